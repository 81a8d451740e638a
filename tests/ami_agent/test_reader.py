"""ami_agent/reader.py and reader_train.py: the free-phrasing reader's clauses, training phrasings kept apart from the held-out ones."""


def test_reader_training_pairs_and_state_completion(reader):
    """The reader's targets are standard statements of exactly the facts said; completion adds what people leave
    unsaid (clear blocks, the empty hand) so the state equals the problem's."""
    import random

    from ami_agent.reader import complete_state
    from ami_agent.reader_train import TRAIN, free_text
    from eval.heldout_phrasings import HELDOUT
    from planner.worlds.blocksworld import blocksworld_names
    from planner.worlds.generate import ProblemGenerator

    d = reader.vb.domain
    names = blocksworld_names(d)
    rng = random.Random(3)
    gen = ProblemGenerator(d, None, rng)
    for _ in range(20):
        p = gen.sample(rng.randint(3, 6))
        text, target = free_text(reader.vb, p.init, p.goal, TRAIN, rng, names)
        init, goal = reader.statement(target)
        assert goal == set(p.goal)
        assert complete_state(init, sorted(p.objects), names) == set(p.init)
        assert "As initial conditions" not in text or text.startswith("As initial")
    train_words = {t for v in TRAIN.facts.values() for t in v}
    assert not train_words & {t for v in HELDOUT.facts.values() for t in v}  # held-out phrasings stay unseen


def test_reader_training_phrasings_are_kept_apart_from_the_heldout_ones():
    from ami_agent.reader_train import TRAIN
    from eval.heldout_phrasings import HELDOUT

    for kind, templates in HELDOUT.facts.items():
        assert not set(templates) & set(TRAIN.facts.get(kind, [])), kind
    for kind, templates in HELDOUT.goal_facts.items():
        assert not set(templates) & set(TRAIN.goal_facts.get(kind, [])), kind
    assert not set(HELDOUT.init_intros) & set(TRAIN.init_intros)
    assert not set(HELDOUT.goal_intros) & set(TRAIN.goal_intros)
    # nor the words that carry them: the held-out benchmark measures generalisation, not recall
    carried = ["piled", "placed", "stand", "find", "cover", "free", "gripper", "cube", "piece", "start", "begin",
               "looks like", "end up", "target", "in the end"]  # fmt: skip
    training = [t.lower() for v in [*TRAIN.facts.values(), *TRAIN.goal_facts.values()] for t in v]
    training += [t.lower() for t in TRAIN.init_intros + TRAIN.goal_intros + TRAIN.refs]
    assert not [(t, w) for t in training for w in carried if w in t]


def test_reader_targets_read_back_and_complete_to_the_problem(reader):
    """Each training pair's target is a standard statement the templates read; with the unsaid facts completed it
    is exactly the generated problem."""
    import random

    from ami_agent.reader import complete_state
    from ami_agent.reader_train import TRAIN, free_text
    from planner.worlds.blocksworld import blocksworld_names
    from planner.worlds.generate import ProblemGenerator

    d = reader.vb.domain
    rng = random.Random(3)
    gen = ProblemGenerator(d, None, rng)
    names = blocksworld_names(d)
    for _ in range(40):
        p = gen.sample(rng.randint(3, 6))
        text, target = free_text(reader.vb, p.init, p.goal, TRAIN, rng, names)
        init, goal = reader.statement(target)
        objects = sorted(p.objects)
        assert complete_state(init, objects, names) == set(p.init), text
        assert goal == set(p.goal)


def test_reader_clauses_reassemble_to_the_problem(reader):
    """The reader reads clause by clause: every clause of a request (training or held-out phrasing, cut as the
    reader cuts it) has one answer, and answering every clause right rebuilds exactly the problem. The held-out
    phrasings are only cut here (the splitter is fixed code), never trained on."""
    import random

    from ami_agent.reader import assemble, complete_state, split_clauses
    from ami_agent.reader_train import TRAIN, clause_examples
    from eval.heldout_phrasings import HELDOUT
    from planner.worlds.blocksworld import blocksworld_names
    from planner.worlds.generate import ProblemGenerator

    d = reader.vb.domain
    rng = random.Random(5)
    gen = ProblemGenerator(d, None, rng)
    names = blocksworld_names(d)
    for phrasing in (TRAIN, HELDOUT):
        for _ in range(30):
            p = gen.sample(rng.randint(3, 6))
            ex = clause_examples(reader.vb, p.init, p.goal, phrasing, rng, names)
            by_sentence: dict[str, list[str]] = {}
            for inp, answer in ex:
                sentence, clause = inp.removeprefix("Sentence: ").split("\nPart: ")
                assert clause in split_clauses(sentence)
                by_sentence.setdefault(sentence, []).append(answer)
            init, goal = assemble(list(by_sentence.values()), reader.vb)
            assert goal == set(p.goal)
            assert complete_state(init, sorted(p.objects), names) == set(p.init)
    assert assemble([["none"], ["start: the red block is clear"]], reader.vb) is None  # no goal read
    assert assemble([["start: the red block is purple"], ["goal: the red block is clear"]], reader.vb) is None


def test_heldout_requests_are_the_same_in_every_process():
    """The held-out benchmark is a fixed set: it must not depend on Python's per-process string hashing."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib; from ami_agent.services import WORLDS_DIR; from eval.heldout_phrasings import heldout_requests;"
        "from planner.worlds.nl import NLConfig, Verbalizer; from planner.worlds.pddl import load_domain;"
        "d = load_domain(WORLDS_DIR / 'blocksworld.pddl');"
        "vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / 'blocksworld.yaml'));"
        "print(hashlib.md5(''.join(t for t, _ in heldout_requests(d, vb, 20)).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1, digests


def test_reader_snaps_stray_phrasings_only_when_unambiguous(reader):
    from ami_agent.reader import assemble, snap_fact

    objs = reader.all_objects
    assert snap_fact(reader.vb, "the hands are empty", objs) == "the hand is empty"
    assert snap_fact(reader.vb, "the red block is clear", objs) == "the red block is clear"
    # a stray phrase about a block is left alone (the statement then fails and the agent asks): no guessing
    assert snap_fact(reader.vb, "the blue block is on top", objs) == "the blue block is on top"
    init, goal = assemble(
        [
            ["none", "start: the red block is on the table", "start: the hands are empty"],
            ["goal: the red block is on top of the blue block"],
        ],
        reader.vb,
    )
    assert ("handempty",) in init and goal == {("on", "a", "b")}


def test_clause_choices_name_only_what_the_clause_names(reader):
    """The constrained reader may answer "none" or a fact about the objects a clause names, marked start or goal;
    a clause that places a block it does not name is not read at all."""
    from ami_agent.reader import clause_choices, named_objects, unresolved

    vb, objects = reader.vb, sorted(reader.vb.config.encoded_objects)
    assert named_objects(vb, "on top of the blue piece sits the red one", objects) == ["b", "a"]
    assert named_objects(vb, "a block is on the table", objects) == []  # "a" is a word, not the object a
    one = clause_choices(vb, "the red cube is bare", objects)
    assert (
        one[0] == "none"
        and "start: the red block is clear" in one
        and "goal: the red block is on the table" in one
    )
    assert not any("blue" in c or "hand is empty" in c for c in one)
    two = clause_choices(vb, "the red one rests on the blue one", objects)
    assert {
        "start: the red block is on top of the blue block",
        "start: the blue block is on top of the red block",
    } <= set(two)
    assert len(two) == 1 + 2 * (2 + 2 + 2 + 2)  # none; on both ways, ontable, clear, holding, in each section
    assert clause_choices(vb, "my hand is empty", objects) == [
        "none",
        "start: the hand is empty",
        "goal: the hand is empty",
    ]
    assert unresolved(vb, "it is on the table", objects) and unresolved(vb, "the other one is clear", objects)
    assert not unresolved(vb, "the red one is clear", objects)
    assert not unresolved(vb, "Can you arrange it so I have", objects)
