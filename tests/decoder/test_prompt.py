"""decoder/prompt.py: the prompt holds no plan words, the answer reads back, the lines and codes sit where they should."""

import pytest
import torch
from support import gen_problem, tiny_latents, tiny_world

from decoder.projector import PlanProjector, Tokens
from decoder.prompt import Slot, answer_end, answer_rounds, answer_text, build_prompt, read_answer
from planner.worlds.nl import NLConfig, Verbalizer


def _verbalizer(domain, planbench=None, config="blocksworld"):
    if planbench is None:
        return Verbalizer(domain)
    return Verbalizer(domain, NLConfig.load(planbench / "configs" / f"{config}.yaml"))


def test_latent_prompt_holds_no_plan_words(bw_domain, planbench):
    p, plan = gen_problem(bw_domain, 5, seed=3)
    vb = _verbalizer(bw_domain, planbench)
    objs = list(p.objects)
    latent = build_prompt(vb, objs, p.init, p.goal, plan, "latent").text()
    both = build_prompt(vb, objs, p.init, p.goal, plan, "latent+text").text()
    for step in plan:
        assert vb.action(step) not in latent
        assert vb.action(step) in both
    assert "the red block" in latent or any(vb.object_phrase(o) in latent for o in objs)
    with pytest.raises(ValueError, match="unknown decoder mode"):
        build_prompt(vb, objs, p.init, p.goal, plan, "text-only")


def test_answer_reads_back_exactly(bw_domain, planbench):
    for vb in (_verbalizer(bw_domain, planbench), Verbalizer(bw_domain)):
        for seed in range(5):
            p, plan = gen_problem(bw_domain, 3 + seed % 3, seed)
            text = answer_text(vb, plan)
            assert read_answer(vb, text, list(p.objects)) == plan
    assert read_answer(vb, "I cannot help with that.", list(p.objects)) == []


def test_slots_match_plan_steps(bw_domain):
    p, plan = gen_problem(bw_domain, 4, 1)
    spec = build_prompt(Verbalizer(bw_domain), list(p.objects), p.init, p.goal, plan)
    slots = [s for s in spec.segments if isinstance(s, Slot)]
    assert [s.index for s in slots if s.kind == "object"] == list(range(len(p.objects)))
    assert [s.index for s in slots if s.kind == "step"] == list(range(len(plan)))


def test_answer_puts_each_steps_vectors_at_its_line(bw_domain, planbench):
    vb = _verbalizer(bw_domain, planbench)
    for seed, n in ((0, 3), (1, 4), (2, 5)):
        p, plan = gen_problem(bw_domain, n, seed)
        spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
        assert spec.answer == answer_text(vb, plan)
        parts = spec.answer_segments
        assert "".join(x for x in parts if isinstance(x, str)) == answer_text(vb, plan)
        assert [x.index for x in parts if isinstance(x, Slot)] == list(range(len(plan)))
        for t, step in enumerate(plan):  # the line's number, its step's vectors, then its words
            at = parts.index(Slot("step", t))
            assert parts[at - 1].endswith(f"{t + 1}.") and parts[at + 1] == " " + vb.action(step)
        # decoding in rounds, each round writing what the language model writes, gives the same text
        written = [parts[0]] + [" " + vb.action(s) for s in plan]
        rounds = answer_rounds(len(plan))
        assert len(rounds) == len(plan) + 1 and rounds[0] == ("", None)
        text = "".join(put + w for (put, _), w in zip(rounds, written)) + answer_end(len(plan))
        assert text == answer_text(vb, plan)
        for put, _ in rounds:  # the rounds put in numbers and markers, never an action's words
            assert not any(vb.action(s) in put for s in plan)
    empty = build_prompt(vb, list(p.objects), p.init, p.init, [])
    assert "".join(empty.answer_segments) == answer_text(vb, [])


def test_written_codes_sit_before_each_argument_and_are_cut_from_the_answer(bw_domain, planbench, model_dir):
    from transformers import AutoTokenizer

    from decoder.data import Example
    from decoder.projector import code_tokens
    from decoder.prompt import coded_action, split_codes, strip_codes
    from decoder.train import batch_tensors

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = code_tokens(tok, 8)
    chars = [tok.decode([i]) for i in ids]
    table = torch.nn.Embedding(len(tok), 16)
    codes = table.weight[ids].detach()
    proj = PlanProjector(32, 16, 0.05, ids, chars, codes)
    from planner.worlds.pddl import load_domain

    mystery = load_domain(planbench / "instances/blocksworld/mystery/generated_domain.pddl")
    for config, domain in (("blocksworld", bw_domain), ("mystery_blocksworld", mystery)):
        vb = _verbalizer(domain, planbench, config)
        model = tiny_world(domain)
        p, plan = gen_problem(domain, 5, 4)
        lat = tiny_latents(model, p, plan, seed=1)
        code = proj.code_map(lat, list(p.objects))
        legend, _ = proj(lat)
        for o, c in code.items():  # an object's written code is its legend entry's token
            assert torch.equal(
                table.weight[tok.convert_tokens_to_ids(tok.tokenize(c))[0]], legend[list(p.objects).index(o)]
            )
        spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan, codes=code)
        plain = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
        assert spec.segments == plain.segments  # the prompt is the same: only the answer writes codes
        for step in plan:
            line = coded_action(vb, step, code)
            assert strip_codes(line, chars) == vb.action(step)
            # each argument's code right before its name: "... the<c> red block"
            for a in step[1:]:
                assert code[a] + " " + vb.object_phrase(a) in line or code[a] + vb.object_phrase(a) in line
        text = "".join(x for x in spec.answer_segments if isinstance(x, str))
        assert strip_codes(text, chars) == answer_text(vb, plan) and text != answer_text(vb, plan)
        # the training sequence holds each code as its own token (as the legend does), with loss on it
        ex = Example("bw", list(p.objects), lat, spec, plan, p.init, p.goal)
        x, _, y = batch_tensors([ex], {"bw": proj}, Tokens(tok), table, end_id=0)
        learned = [i for i in y[0].tolist() if i != -100]
        assert sum(learned.count(i) for i in ids) == sum(len(s) - 1 for s in plan)
        assert split_codes("a" + chars[0] + " b" + chars[1], chars) == ["a", chars[0], " b", chars[1]]
        t = Tokens(tok)  # a code stands alone whatever its neighbours would merge into
        assert t.coded("the" + chars[0] + " red", chars) == t("the") + [ids[0]] + t(" red")
    with pytest.raises(ValueError, match="as many characters"):
        PlanProjector(32, 16, 0.05, ids, chars[:-1], codes)


def test_a_state_is_said_object_by_object_and_reads_back(bw_domain, planbench):
    """Every fact of random states is said once, under its first argument in legend order (facts without
    arguments last), codes before names only where codes are given, and reads back exactly."""
    import random

    from decoder.prompt import build_state_prompt, read_state, state_order, strip_codes
    from planner.worlds.strips import Task

    vb = Verbalizer(bw_domain, NLConfig.load(planbench / "configs" / "blocksworld.yaml"))
    rng = random.Random(3)
    for n in (3, 5, 7):
        p, _ = gen_problem(bw_domain, n, seed=n)
        task = Task(bw_domain, p)
        state = task.init
        for _ in range(rng.randint(0, 9)):
            state = task.apply(state, task.actions[rng.choice(task.applicable(state))])
        facts = task.state_facts(state)
        objects = list(p.objects)
        codes = {o: chr(0x4E00 + i) for i, o in enumerate(objects)}
        spec = build_state_prompt(vb, objects, facts, codes)
        assert (
            "on top of" not in spec.text() and "Describe this state." in spec.text()
        )  # no fact in the prompt
        order = state_order(objects, facts)
        firsts = [objects.index(a[1]) if len(a) > 1 else len(objects) for a in order]
        assert firsts == sorted(firsts)
        assert ("handempty",) not in facts or order[-1] == ("handempty",)
        said = strip_codes(spec.answer_segments[0], set(codes.values()))
        assert said == spec.answer
        assert read_state(vb, said, objects) == (frozenset(facts), [])
        assert all(spec.answer_segments[0].count(c) >= 1 for c in codes.values())


def test_a_clause_that_says_no_fact_is_reported(bw_domain, planbench):
    from decoder.prompt import read_state

    vb = Verbalizer(bw_domain, NLConfig.load(planbench / "configs" / "blocksworld.yaml"))
    facts, unread = read_state(
        vb, "the red block is clear, the red block is purple and the hand is empty.", ["a"]
    )
    assert facts == {("clear", "a"), ("handempty",)} and unread == ["the red block is purple"]
