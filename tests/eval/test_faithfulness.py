"""eval/faithfulness.py: the committed decoder writes generated plans back."""

from support import needs_trained

from decoder.api import Decoder


@needs_trained
def test_generated_faithfulness_decodes_optimal_plans_and_walks(vllm_backend, model_dir, planbench):
    from eval.faithfulness import generated_faithfulness
    from eval.suites import world_for

    world = world_for("planbench:blocksworld", planbench)
    rows = generated_faithfulness(Decoder(vllm_backend, model_dir), [world], problems=4, seed=777)
    assert [(r["world"], r["kind"], r["problems"]) for r in rows] == [
        (world.name, "optimal", 4),
        (world.name, "walk", 4),
    ]
    assert rows[0]["faithful"] == 4, rows  # generated optimal plans, as the planner returns them


@needs_trained
def test_the_committed_decoder_says_predicted_states_and_reads_them(vllm_backend, model_dir, planbench):
    """Generated states (walk ends, as the world model predicts them) are described right by the committed
    decoder, and fall to about chance with the state vectors shuffled between problems."""
    from eval.faithfulness import generated_state_cases, state_accuracy
    from eval.suites import world_for

    world = world_for("planbench:blocksworld", planbench)
    cases = generated_state_cases([world], [4, 6], 4, seed=31)
    dec = Decoder(vllm_backend, model_dir)
    seen = state_accuracy(dec, cases)
    assert seen["exact"] >= 7 and seen["fact_recall"] >= 0.95, seen
    blind = state_accuracy(dec, cases, "states shuffled")
    assert blind["exact"] <= 1 and blind["fact_recall"] < 0.8, blind


def test_donors_and_transplants():
    import torch

    from eval.faithfulness import _transplant, donors

    for n in (2, 5, 9):
        d = donors(n)
        assert sorted(d) == list(range(n)) and all(d[i] != i for i in range(n))
    states = torch.zeros(4, 6, 3)  # 3 steps, 5 objects
    donor = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)  # 1 step, 3 objects
    out = _transplant(states, donor)
    assert out.shape == states.shape
    assert torch.equal(out[:, -1], donor[[0, 1, 1, 1], -1])  # the global row; the last step repeated
    assert torch.equal(out[0, 3], donor[0, 0])  # objects cycled


def test_state_accuracy_scores_facts_and_chance():
    """Exactly right, fact precision and recall, and the chance scores of another case's state said instead,
    judged on a describer that says the truth for one case and one wrong fact for the other."""
    from dataclasses import dataclass

    import torch

    from decoder.api import StateItem
    from decoder.projector import StateLatents
    from eval.faithfulness import StateCase, state_accuracy

    truth = [
        frozenset({("on", "a", "b"), ("ontable", "b"), ("clear", "a"), ("handempty",)}),
        frozenset({("ontable", "a"), ("ontable", "b"), ("clear", "a"), ("clear", "b"), ("handempty",)}),
    ]
    cases = [
        StateCase(
            f"c{k}",
            StateItem("bw", None, ["a", "b"], StateLatents(torch.zeros(2, 4), torch.zeros(3, 4))),
            t,
            0,
        )
        for k, t in enumerate(truth)
    ]

    @dataclass
    class Said:
        facts: frozenset
        unread: list
        text: str = ""
        tokens_out: int = 0

    class Describer:
        def describe(self, items):
            return [Said(truth[0], []), Said(truth[1] - {("clear", "b")} | {("on", "b", "a")}, [])]

    r = state_accuracy(Describer(), cases)
    assert r["exact"] == 1 and r["fact_precision"] == round(8 / 9, 4) and r["fact_recall"] == round(8 / 9, 4)
    # chance: each case's donor is the other case: 3 facts shared of 4 said / 5 said; 9 that hold
    assert r["chance"] == {
        "exact_rate": 0.0,
        "fact_precision": round(6 / 9, 4),
        "fact_recall": round(6 / 9, 4),
    }


def test_end_state_cases_take_the_plans_last_predicted_state_and_the_simulators(bw_domain):
    from support import gen_problem, tiny_latents, tiny_world

    from decoder.api import DecodeItem
    from eval.faithfulness import Case, end_state_cases
    from planner.worlds.nl import Verbalizer
    from planner.worlds.strips import Task

    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 4, 3)
    latents = tiny_latents(model, p, plan)
    item = DecodeItem("bw", Verbalizer(bw_domain), list(p.objects), p.init, p.goal, plan, latents)
    [case] = end_state_cases(
        [
            Case("x", bw_domain, p, item, "solved", frozenset({("handempty",)})),
            Case("y", bw_domain, p, None, "no_plan"),
        ]
    )
    task = Task(bw_domain, p)
    state = task.init
    for a in plan:  # the simulator's bit-set states, apart from the validator's replay the cases use
        state = task.apply(state, next(g for g in task.actions if (g.name, *g.args) == tuple(a)))
    assert case.truth == task.state_facts(state) and case.steps == len(plan) >= 1
    assert case.reference == {("handempty",)}
    assert (case.item.state.state == latents.states[-1]).all()
