"""planner/values.py: exact steps-to-go over enumerated state spaces."""

import random

import pytest


def test_state_space_distances_are_the_oracles_plan_lengths(bw_domain):
    """Every reachable state of a 3-block problem is enumerated (13 arrangements with the hand empty, 9 with a block
    held), and the backward breadth-first distances equal the oracle's optimal plan lengths from those states."""
    from planner.values import StateSpace
    from planner.worlds.generate import ProblemGenerator
    from planner.worlds.oracle import solve
    from planner.worlds.pddl import Problem
    from planner.worlds.strips import Task

    gen = ProblemGenerator(bw_domain, None, random.Random(4))
    problem = gen.sample(3)
    task = Task(bw_domain, problem)
    space = StateSpace.enumerate(task)
    assert len(space.states) == 22 and space.states[0] == task.init
    for goal_problem in (problem, gen.sample(3), gen.sample(3)):
        dist = space.distances(task.mask(goal_problem.goal))
        for i in random.Random(0).sample(range(22), 8):
            start = Problem(
                "p", bw_domain.name, problem.objects, task.state_facts(space.states[i]), goal_problem.goal
            )
            assert dist[i] == len(solve(Task(bw_domain, start)).plan)


def test_value_samples_carry_exact_steps_to_go_and_cover_every_distance(bw_domain):
    """A value sample's steps-to-go is the oracle's optimal plan length from its state to its goal; distances are
    drawn evenly (near and far states alike, the goal states included); a problem too large to enumerate is a clear
    error."""
    from planner.data import TrajectorySampler
    from planner.encoding import Vocabulary
    from planner.values import StateSpaceTooLarge, ValueSampler
    from planner.worlds.oracle import solve
    from planner.worlds.pddl import Problem
    from planner.worlds.strips import Task

    ts = TrajectorySampler(bw_domain, Vocabulary.from_domain(bw_domain), rng=random.Random(0))
    vs = ValueSampler(
        bw_domain, ts.symbols, ts.problem, random.Random(1), goals_per_problem=2, samples_per_goal=8
    )
    samples = [vs.sample(4) for _ in range(40)]
    objects = ts.problem(4).objects  # generated problems of one size share their objects
    sym = ts.symbols(list(objects))
    for v in samples[:10]:
        facts = frozenset(sym.facts[i] for i in v.state)
        start = Problem("p", bw_domain.name, objects, facts, frozenset(sym.facts[i] for i in v.goal))
        assert len(solve(Task(bw_domain, start)).plan) == v.to_go
    assert {v.to_go for v in samples} >= {0, 1, 2}
    tiny = ValueSampler(bw_domain, ts.symbols, ts.problem, random.Random(1), max_states=100)
    with pytest.raises(StateSpaceTooLarge):
        tiny.sample(5)
