"""planner/worlds/oracle.py: the optimal reference planner."""

from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve
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
