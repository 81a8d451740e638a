"""planner/worlds/oracle.py: the optimal reference planner."""

from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve, solve_satisficing
from planner.worlds.pddl import parse_problem
from planner.worlds.strips import Task


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


def test_satisficing_plans_are_valid_and_near_optimal(bw_domain):
    """Weighted A* on h_FF: every plan valid; on small problems within a step or two of the shortest."""
    from planner.worlds.plans import parse_plan_text, validate

    gen = ProblemGenerator(bw_domain, rng=7)
    extra = 0
    for _ in range(10):
        p = gen.sample(5)
        task = Task(bw_domain, p)
        r = solve_satisficing(task)
        assert r.status == "solved"
        assert validate(bw_domain, p, parse_plan_text("\n".join(r.plan), bw_domain, p)).valid
        extra += len(r.plan) - len(solve(task).plan)
    assert 0 <= extra <= 6


def test_satisficing_reaches_logistics_of_planbench_sizes():
    """Problems of 20-25 objects, beyond breadth-first search: valid plans within seconds."""
    from pathlib import Path

    from planner.worlds.pddl import load_domain
    from planner.worlds.plans import parse_plan_text, validate

    d = load_domain(Path(__file__).resolve().parents[3] / "ami_agent" / "worlds" / "logistics.pddl")
    gen = ProblemGenerator(d, rng=11)
    for n in (20, 23, 25):
        p = gen.sample(n)
        r = solve_satisficing(Task(d, p), time_limit=30)
        assert r.status == "solved" and r.seconds < 30
        assert validate(d, p, parse_plan_text("\n".join(r.plan), d, p)).valid


def test_satisficing_no_plan(bw_domain):
    """A goal no state satisfies ends with the space exhausted; a budget is reported as such."""
    p = parse_problem(
        """(define (problem u) (:domain blocksworld-4ops) (:objects a b c)
        (:init (handempty) (ontable a) (ontable b) (ontable c) (clear a) (clear b) (clear c))
        (:goal (and (on a c) (on b c))))""",
        bw_domain,
    )
    r = solve_satisficing(Task(bw_domain, p))
    assert r.status == "no_plan" and "exhausted" in r.reason
    big = ProblemGenerator(bw_domain, rng=0).sample(8, goal_facts=7)
    r = solve_satisficing(Task(bw_domain, big), max_expansions=2)
    assert r.status == "no_plan" and "budget" in r.reason
