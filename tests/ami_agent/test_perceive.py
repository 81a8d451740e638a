"""ami_agent/perceive.py: PlanBench's phrasing read exactly, constraints and follow-ups, impossible states -> questions."""

import pytest

from ami_agent.agent import check_text
from ami_agent.perceive import perceive
from planner.worlds.pddl import load_domain, load_problem


def test_reads_planbench_queries_exactly(reader, planbench):
    from eval.suites import load_suite

    for inst in load_suite("planbench:blocksworld", planbench)[::25]:
        p = load_problem(inst.problem_path, load_domain(inst.domain_path))
        got = perceive(inst.query, reader, None)
        assert got.kind == "problem", got.question
        assert got.init == set(p.init) and got.goal == set(p.goal)
        assert set(got.objects) == set(p.objects)
        assert got.constraints == []  # the query's example plans are not constraints


@pytest.mark.parametrize("n", [13, 20, 30])
def test_reads_the_scaling_suites_queries_past_twelve_blocks(reader, planbench, n):
    """Blocks 13 to 30 have the colours the generated suites give them (pink to bronze, from the agent's English)."""
    from eval.harness import load_cases

    for case in load_cases(f"gen:blocksworld:N={n}", planbench, limit=2):
        got = perceive(case.query, reader, None)
        assert got.kind == "problem", got.question
        assert got.init == set(case.problem.init) and got.goal == set(case.problem.goal)
        assert set(got.objects) == set(case.problem.objects)


STATE = (
    "As initial conditions I have that, the red block is clear, the blue block is clear, the hand is empty, "
    "the red block is on the table and the blue block is on the table. "
)


def test_constraints_in_words(reader):
    text = (
        STATE + "My goal is to have that the red block is on top of the blue block. "
        "Never put the blue block on the table. Don't touch the yellow block. Do not use stack. "
        "Keep the red block on the table."
    )
    p = perceive(text.replace("Don't touch the yellow block. ", ""), reader, None)
    kinds = {(c.kind, c.target) for c in p.constraints}
    assert ("forbid_fact", ("ontable", "b")) in kinds
    assert ("forbid_operator", ("stack",)) in kinds
    assert ("require_fact", ("ontable", "a")) in kinds
    # the yellow block is not on the table at all: a question, not a guess
    assert perceive(text, reader, None).kind == "clarify"
    # "don't pick up red" forbids holding it ("don't touch red" is the rule that forbids moving it)
    said = reader.constraints("And don't pick up the red block at any point. Also without using put-down.")
    assert {(c.kind, c.target) for c in said} == {
        ("forbid_fact", ("holding", "a")),
        ("forbid_operator", ("put-down",)),
    }


def test_follow_up_edits_the_previous_goal(reader):
    first = perceive(
        STATE + "My goal is to have that the red block is on top of the blue block.", reader, None
    )
    prev = {
        "objects": first.objects,
        "init": [list(a) for a in first.init],
        "goal": [list(a) for a in first.goal],
        "constraints": [],
    }
    nxt = perceive("Now put the blue block on top of the red block instead.", reader, prev)
    assert nxt.kind == "followup"
    assert nxt.goal == {("on", "b", "a")} and nxt.init == first.init
    nxt = perceive("And never put the red block on the table.", reader, prev)
    assert nxt.kind == "followup" and nxt.goal == first.goal
    assert [c.target for c in nxt.constraints] == [("ontable", "a")]


@pytest.mark.parametrize(
    "state, words",
    [
        (
            "the red block is on top of the blue block, the blue block is on top of the red block, the hand is empty",
            "circle",
        ),
        (
            "the red block is on top of the blue block, the orange block is on top of the blue block, the hand is empty",
            "only one block",
        ),
        (
            "the red block is on top of the blue block, the red block is on top of the orange block, the hand is empty",
            "both",
        ),
        (
            "the hand is empty, the hand is currently holding red block, the blue block is on the table",
            "hand cannot be empty",
        ),
    ],
)
def test_impossible_states_ask_instead_of_guessing(reader, state, words):
    p = perceive(
        f"As initial conditions I have that, {state}. My goal is to have that the blue block is on the table.",
        reader,
        None,
    )
    assert p.kind == "clarify" and words in p.question


def test_unknown_objects_and_plain_questions(reader):
    p = perceive("Put the peach block on the red block.", reader, None)
    assert p.kind == "clarify" and "peach block" in p.question
    assert perceive("What is the capital of France?", reader, None).kind == "chat"
    assert perceive("Stack the red block on the blue block.", reader, None).kind == "clarify"


def test_misspelt_colours_still_go_to_the_reader(reader):
    """Two colour words, spelt as people type them, make a request worth reading; one or none do not."""
    from ami_agent.perceive import looks_like_planning

    assert looks_like_planning("i hav red on bleu n greeen on tabel", reader)
    assert looks_like_planning("robot is holdin the gren one, violett too", reader)
    assert not looks_like_planning("how was your weekend? mine was great", reader)
    assert not looks_like_planning("I read the news today", reader)


def test_bad_text_is_refused_clearly():
    assert "empty" in check_text("   ")
    assert "too long" in check_text("a" * 40_000)
    assert "binary" in check_text("abc\x00def")
    assert check_text("hello") == ""


def _problem(p, before=None) -> dict:
    return {
        "objects": p.objects,
        "init": [list(a) for a in p.init],
        "goal": [list(a) for a in p.goal],
        "constraints": [c.to_dict() for c in p.constraints],
        "before": before,
    }


def test_undo_returns_to_the_problem_before_the_last_edit(reader):
    first = perceive(
        STATE + "My goal is to have that the red block is on top of the blue block.", reader, None
    )
    p1 = _problem(first)
    edited = perceive("Now put the blue block on top of the red block instead.", reader, p1)
    p2 = _problem(edited, before=p1)
    undone = perceive("Undo the last one.", reader, p2)
    assert undone.kind == "followup" and undone.undo and undone.goal == first.goal
    assert perceive("undo that", reader, p1).kind == "clarify"  # nothing before the first problem


def test_what_if_the_hand_holds_a_block(reader):
    first = perceive(
        STATE + "My goal is to have that the red block is on top of the blue block.", reader, None
    )
    p = perceive("What if the hand holds the red block at the start?", reader, _problem(first))
    assert p.kind == "followup" and p.goal == first.goal
    assert ("holding", "a") in p.init and ("handempty",) not in p.init and ("ontable", "a") not in p.init
    stacked = perceive(
        "As initial conditions I have that, the red block is clear, the hand is empty, the red block is on top of "
        "the blue block and the blue block is on the table. My goal is to have that the blue block is on top of "
        "the red block.",
        reader,
        None,
    )
    q = perceive("what if I'm holding blue?", reader, _problem(stacked))
    assert q.kind == "clarify" and "red" in q.question  # blue has red on it: the question names it


def test_summary_says_what_was_understood(reader):
    from ami_agent.perceive import summary

    p = perceive(
        STATE
        + "My goal is to have that the red block is on top of the blue block. Never put the red block on "
        "the table.",
        reader,
        None,
    )
    assert summary(p.objects, p.init, p.goal, p.constraints, reader) == (
        "You have: red and blue on the table. You want: red on blue. Rules: Never put the red block on the table."
    )


def _logistics_problem(seed: int, **counts):
    import random

    from ami_agent.services import WORLDS_DIR
    from planner.worlds.spec import WorldSpec

    d = load_domain(WORLDS_DIR / "logistics.pddl")
    return WorldSpec.beside(d).sample(d, random.Random(seed), counts=counts or None)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_logistics_queries_are_read_with_the_types_their_names_imply(logistics_reader, seed):
    """PlanBench's logistics phrasing never says "truck_0 is a truck": the names imply it (object_types)."""
    p = _logistics_problem(seed)
    text = logistics_reader.vb.statement(p.init, p.goal) + " What is the plan to achieve my goal?"
    assert "is a truck" not in text and "truck_0" in text
    got = perceive(text, logistics_reader, None)
    assert got.kind == "problem", got.question
    assert got.init == set(p.init) and got.goal == set(p.goal)
    assert set(got.objects) == set(p.objects)
    assert got.constraints == []


def test_logistics_rules_in_the_worlds_terms(logistics_reader):
    p = _logistics_problem(4, city=2, location=2, package=3, airplane=2)
    pkg = sorted(o for o in p.objects if o.startswith("p"))[0]
    placed = {f for f in p.init if f[0] == "at" and f[1] == pkg}
    text = (
        logistics_reader.vb.statement(p.init, p.goal)
        + " Do not use airplane_1. Never unload at location_1_0, and don't fly. "
        + f"Keep package_{pkg[1:]} where it is."
    )
    got = perceive(text, logistics_reader, None)
    kinds = {(c.kind, c.target) for c in got.constraints}
    assert ("forbid_object", ("a1",)) in kinds
    assert ("forbid_operator", ("unload-truck", "l1-0")) in kinds
    assert ("forbid_operator", ("unload-airplane", "l1-0")) in kinds
    assert ("forbid_operator", ("fly-airplane",)) in kinds
    assert {c.target for c in got.constraints if c.kind == "require_fact"} == placed
    # "and don't fly" is a rule of its own, not objects of the unload rule
    assert len([c for c in got.constraints if c.kind == "forbid_operator"]) == 3


def test_a_logistics_summary_says_what_moves(logistics_reader):
    from ami_agent.perceive import summary

    p = _logistics_problem(5, city=2, location=2, package=2, airplane=1)
    got = perceive(logistics_reader.vb.statement(p.init, p.goal), logistics_reader, None)
    line = summary(got.objects, got.init, got.goal, got.constraints, logistics_reader)
    assert "package_0 is at" in line and "facts that never change" in line
    assert "is in the city" not in line and line.count("You want:") == 1
