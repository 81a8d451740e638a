"""planner/worlds/generate.py and blocksworld.py: random solvable problems, the blocksworld family under any names."""

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
