"""eval/state_questions.py: the held-out state questions' threads and how an answer is judged (on made-up
replies: the questions' texts are not read here)."""

from ami_agent.services import blocksworld
from eval.state_questions import judge as judge_reply
from eval.state_questions import load_cases, said_step, truth_at


def test_every_question_gets_a_four_block_problem_with_a_plan_long_enough():
    d, vb = blocksworld()
    cases = load_cases(d, vb)
    assert len(cases) == 50 and len({c.id for c in cases}) == 50
    assert all(sorted(c.problem.objects) == ["a", "b", "c", "d"] and 4 <= len(c.plan) <= 8 for c in cases)
    assert all(c.request.startswith("As initial conditions I have that") for c in cases)
    assert load_cases(d, vb)[3].problem == cases[3].problem  # seeded


def test_the_judge_wants_the_right_state_and_the_right_content():
    d, vb = blocksworld()
    case = next(c for c in load_cases(d, vb) if c.kind == "holding")
    t = {"start": 0, "end": len(case.plan)}.get(case.when, case.when)
    truth = truth_at(d, case, t)
    held = [a[1] for a in truth if a[0] == "holding"]
    right = f"The hand holds the {vb.object_phrase(held[0])}." if held else "The hand is empty."
    wrong = "The hand is empty." if held else "The hand holds the red block."
    phrase = "Before the first step" if t == 0 else f"After step {t}"
    if t == len(case.plan):
        phrase = f"At the end (after step {t})"
    ok = judge_reply(d, vb, case, {"status": "state", "reply": f"{phrase}: {right}"}, len(case.plan))
    assert ok["right"] and ok["step_said"] == t
    assert not judge_reply(d, vb, case, {"status": "state", "reply": f"{phrase}: {wrong}"}, len(case.plan))[
        "right"
    ]
    other = "After step 1" if t != 1 else "After step 2"
    assert not judge_reply(d, vb, case, {"status": "state", "reply": f"{other}: {right}"}, len(case.plan))[
        "right"
    ]
    assert [
        said_step(s) for s in ("Before the first step: x", "After step 3: x", "At the end (after step 6), y")
    ] == [
        0,
        3,
        6,
    ]
