import random

import pytest
from conftest import KEYS_DOMAIN, KEYS_PROBLEM

from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.errors import WorldError
from planner.worlds.generate import ProblemGenerator, object_names, problem_to_pddl
from planner.worlds.oracle import solve
from planner.worlds.pddl import parse_domain, parse_problem
from planner.worlds.plans import parse_plan_text, validate
from planner.worlds.strips import Task

TOWER = """(define (problem p) (:domain blocksworld-4ops) (:objects a b c)
(:init (handempty) (ontable a) (on b a) (on c b) (clear c))
(:goal (and (on a b) (on b c))))"""


@pytest.fixture
def tower(bw_domain):
    return parse_problem(TOWER, bw_domain, "tower.pddl")


def test_grounding_and_apply(bw_domain, tower):
    task = Task(bw_domain, tower)
    app = {task.actions[i].label for i in task.applicable(task.init)}
    assert app == {"(unstack c b)"}
    s = task.apply(task.init, task.find_action("unstack", ("c", "b")))
    assert task.state_facts(s) == {("holding", "c"), ("clear", "b"), ("ontable", "a"), ("on", "b", "a")}
    assert not task.is_goal(s)


def test_validator_reports_first_failing_step(bw_domain, tower):
    plan = parse_plan_text("(unstack c b)\n(put-down c)\n(pick-up a)", bw_domain, tower)
    v = validate(bw_domain, tower, plan)
    assert not v.valid
    assert v.failed_step == 3 and v.failed_action == "(pick-up a)"
    assert set(v.unmet_preconditions) == {("clear", "a")}
    assert "step 3 (pick-up a): precondition not satisfied: (clear a)" == v.reason


def test_validator_goal_and_valid(bw_domain, tower):
    v = validate(bw_domain, tower, parse_plan_text("(unstack c b)\n(put-down c)", bw_domain, tower))
    assert not v.valid and v.failed_step is None and ("on", "a", "b") in v.unmet_goals
    r = solve(Task(bw_domain, tower))
    assert r.status == "solved"
    assert validate(bw_domain, tower, parse_plan_text("\n".join(r.plan), bw_domain, tower)).valid
    assert len(r.plan) == 6  # c down, b onto c, a onto b: 2 actions each


def _reachable_in(task, k, s):
    if task.is_goal(s):
        return True
    return k > 0 and any(
        _reachable_in(task, k - 1, task.apply(s, task.actions[i])) for i in task.applicable(s)
    )


def _reachable_in(task, k, s):
    if task.is_goal(s):
        return True
    return k > 0 and any(
        _reachable_in(task, k - 1, task.apply(s, task.actions[i])) for i in task.applicable(s)
    )


def test_oracle_is_optimal_against_exhaustive_search(bw_domain):
    """BFS length equals the true shortest length found by iterative deepening over all plans (small problems)."""
    gen = ProblemGenerator(bw_domain, rng=3)
    for _ in range(10):
        p = gen.sample(3)
        task = Task(bw_domain, p)
        r = solve(task)

        shortest = next(k for k in range(12) if _reachable_in(task, k, task.init))
        assert len(r.plan) == shortest


def test_unsolvable_is_no_plan(bw_domain):
    p = parse_problem(
        """(define (problem u) (:domain blocksworld-4ops) (:objects a b c)
        (:init (handempty) (ontable a) (ontable b) (ontable c) (clear a) (clear b) (clear c))
        (:goal (and (on a c) (on b c))))""",
        bw_domain,
    )
    r = solve(Task(bw_domain, p))
    assert r.status == "no_plan" and "exhausted" in r.reason
    assert r.expansions > 0


def test_budget_is_reported(bw_domain):
    p = ProblemGenerator(bw_domain, rng=0).sample(6, goal_facts=5)
    r = solve(Task(bw_domain, p), max_expansions=5)
    assert r.status == "no_plan" and "budget" in r.reason


def test_blocksworld_generator(bw_domain):
    gen = ProblemGenerator(bw_domain, rng=random.Random(7))
    for n in (1 + 1, 3, 5, 8, 15):
        p = gen.sample(n)
        assert list(p.objects) == object_names(n)
        onto = [a for a in p.init if a[0] == "on"]
        assert len({a[1] for a in onto}) == len(onto) and len({a[2] for a in onto}) == len(onto)
        assert sum(1 for a in p.init if a[0] == "ontable") + len(onto) == n
        assert not p.goal <= p.init
        again = parse_problem(problem_to_pddl(p), bw_domain)
        assert (again.init, again.goal) == (p.init, p.goal)
        if n <= 5:
            assert solve(Task(bw_domain, p)).status == "solved"
    assert object_names(28)[-2:] == ["aa", "ab"]


def test_generator_needs_blocks(bw_domain):
    with pytest.raises(WorldError, match="at least 1"):
        ProblemGenerator(bw_domain, rng=0).sample(0)


def test_mystery_structure_is_found(planbench):
    from planner.worlds.pddl import load_domain

    d = load_domain(planbench / "instances/blocksworld/mystery/generated_domain.pddl")
    names = blocksworld_names(d)
    assert names["on"] == "craves" and names["pick-up"] == "attack" and names["unstack"] == "feast"
    assert blocksworld_names(load_domain(planbench / "instances/logistics/generated_domain.pddl")) is None


def test_generic_generator_on_a_domain_of_our_own():
    d = parse_domain(KEYS_DOMAIN, "keys.pddl")
    seed = parse_problem(KEYS_PROBLEM, d, "keys-1.pddl")
    task = Task(d, seed)
    assert {a.label for a in task.actions} >= {"(move r1 r2)", "(take k1 r1)", "(drop k2 r3)"}
    assert not any(
        a.name == "move" and a.args == ("r1", "r3") for a in task.actions
    )  # no door: never grounded
    r = solve(task)
    assert r.status == "solved" and validate(d, seed, parse_plan_text("\n".join(r.plan), d, seed)).valid
    with pytest.raises(WorldError, match="no dedicated generator"):
        ProblemGenerator(d, rng=0)
    gen = ProblemGenerator(d, seed, rng=1)
    for _ in range(20):
        p = gen.sample()
        assert ("door", "r1", "r2") in p.init  # static facts kept
        assert not p.goal <= p.init
        assert solve(Task(d, p)).status == "solved"
    with pytest.raises(WorldError, match="keep the seed's 5 objects"):
        gen.sample(7)
