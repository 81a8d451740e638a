"""planner/shorten.py: a found plan made shorter by moving steps earlier and dropping the ones no longer needed,
on hand-made steps and with the committed logistics model reading a real plan."""

import time

import torch
from conftest import ROOT

from planner.shorten import Step, eliminate, hoist, shorten

# a truck t at A, packages 1 and 2 at B, both wanted at A. Facts: 0 t-at-A, 1 t-at-B, 2 p1-at-B, 3 p1-in-t,
# 4 p1-at-A, 5 p2-at-B, 6 p2-in-t, 7 p2-at-A
GO = dict(action=0, pre=frozenset({0}), add=frozenset({1}), delete=frozenset({0}))
BACK = dict(action=1, pre=frozenset({1}), add=frozenset({0}), delete=frozenset({1}))
LOAD1 = dict(action=2, pre=frozenset({1, 2}), add=frozenset({3}), delete=frozenset({2}))
UNLOAD1 = dict(action=3, pre=frozenset({0, 3}), add=frozenset({4}), delete=frozenset({3}))
LOAD2 = dict(action=4, pre=frozenset({1, 5}), add=frozenset({6}), delete=frozenset({5}))
UNLOAD2 = dict(action=5, pre=frozenset({0, 6}), add=frozenset({7}), delete=frozenset({6}))
START, GOAL = (0, 2, 5), [4, 7]


def _steps(*kinds) -> list[Step]:
    return [Step(i, **k) for i, k in enumerate(kinds)]


def _actions(steps):
    return [s.action for s in steps]


def test_elimination_drops_a_round_trip_and_the_moves_merge_two_trips_into_one():
    trips = _steps(GO, LOAD1, BACK, UNLOAD1, GO, LOAD2, BACK, UNLOAD2)
    # nothing to drop as it stands: every step is needed in this order
    assert _actions(eliminate(frozenset(START), trips, frozenset(GOAL), lambda s, st: True)) == _actions(
        trips
    )
    # a drive there and back that serves nothing goes
    detour = _steps(GO, BACK, GO, LOAD1, BACK, UNLOAD1, GO, LOAD2, BACK, UNLOAD2)
    assert len(eliminate(frozenset(START), detour, frozenset(GOAL), lambda s, st: True)) == 8
    # the second load moves into the first trip (as early as it can run: right after the first drive), and the
    # second trip's drives then serve nothing
    moved = hoist(frozenset(START), trips, lambda s, st: True)
    assert _actions(moved[:3]) == [0, 4, 2]
    short, states = shorten(trips, START, GOAL)
    assert _actions(short) == [0, 4, 2, 1, 5, 3]
    assert len(states) == 7 and set(GOAL) <= set(states[-1]) and states[0] == START


def test_a_step_that_must_avoid_company_or_a_guardrail_keeps_the_plan_longer():
    trips = _steps(GO, LOAD1, BACK, UNLOAD1, GO, LOAD2, BACK, UNLOAD2)
    # neither load may run with the other package in the truck: the trips stay apart
    company = {2: frozenset({6}), 4: frozenset({3})}
    avoid = [
        Step(s.index, s.action, s.pre, s.add, s.delete, company.get(s.action, frozenset())) for s in trips
    ]
    short, _ = shorten(avoid, START, GOAL)
    assert len(short) == 8
    # a guardrail that forbids both packages in the truck at once
    short, _ = shorten(trips, START, GOAL, ok=lambda steps, states: not any({3, 6} <= s for s in states))
    assert len(short) == 8


def test_the_logistics_model_reads_the_steps_preconditions_and_shortens_a_plan_the_check_accepts():
    """With the committed logistics model: a plan that brings two packages to the airport in two trips of the same
    truck is read (each step's preconditions, by the applicability head, are exactly the domain's), shortened to one
    trip, checked by fresh ensembles (as every plan: one, or two more when the first disagrees) and valid by the
    simulator."""
    from planner.api import Planner
    from planner.latent import applicable_of
    from planner.search import PlanResult
    from planner.shorten import read_steps
    from planner.worlds.pddl import Problem, load_domain
    from planner.worlds.plans import validate

    domain = load_domain(ROOT / "ami_agent" / "worlds" / "logistics.pddl")
    objects = ["c0", "l0-0", "l0-1", "t0", "a0", "p0", "p1"]
    static = {("city", "c0"), ("location", "l0-0"), ("location", "l0-1"), ("airport", "l0-0"),
              ("in-city", "l0-0", "c0"), ("in-city", "l0-1", "c0"), ("truck", "t0"), ("airplane", "a0"),
              ("obj", "p0"), ("obj", "p1")}  # fmt: skip
    init = static | {("at", "t0", "l0-0"), ("at", "a0", "l0-0"), ("at", "p0", "l0-1"), ("at", "p1", "l0-1")}
    goal = {("at", "p0", "l0-0"), ("at", "p1", "l0-0")}
    plan = [("drive-truck", "t0", "l0-0", "l0-1", "c0"), ("load-truck", "p0", "t0", "l0-1"),
            ("drive-truck", "t0", "l0-1", "l0-0", "c0"), ("unload-truck", "p0", "t0", "l0-0"),
            ("drive-truck", "t0", "l0-0", "l0-1", "c0"), ("load-truck", "p1", "t0", "l0-1"),
            ("drive-truck", "t0", "l0-1", "l0-0", "c0"), ("unload-truck", "p1", "t0", "l0-0")]  # fmt: skip
    planner = Planner.load(ROOT / "checkpoints" / "logistics-strips.pt")
    world, *judges = (planner._world(objects, list(range(k, k + 5)), init) for k in (0, 5, 10, 15))
    sym = world.symbols
    ids = [sym.action_index[a] for a in plan]
    init_ids, goal_ids = world.fact_ids(init), world.fact_ids(goal)
    path = [tuple(init_ids)]  # the facts the model reads along the plan, as the search records them
    for a in ids:
        probs = world.fact_probs(world.step(world.encode([list(path[-1])]), torch.tensor([a])))
        path.append(tuple((probs[0] > 0.5).nonzero().flatten().tolist()))
    # the plan's own steps read from their rows alone, as from every candidate action's
    latents = world.encode([list(s) for s in path])
    assert torch.allclose(
        applicable_of(world, latents, ids), world.applicable_probs(latents)[:, ids], atol=1e-5
    )
    steps = read_steps(world, ids, path)
    schema = {"drive-truck": lambda a: {("at", a[1], a[2])},
              "load-truck": lambda a: {("at", a[1], a[3]), ("at", a[2], a[3])},
              "unload-truck": lambda a: {("in", a[1], a[2]), ("at", a[2], a[3])}}  # fmt: skip
    assert [{sym.facts[f] for f in s.pre} for s in steps] == [schema[a[0]](a) for a in plan]

    found = PlanResult("solved", plan, path_facts=path)
    short = planner._shorten(world, judges, init_ids, goal_ids, found, [], [], t0=time.perf_counter())
    assert short is not None and short.status == "solved" and len(short.actions) == 6
    assert validate(
        domain,
        Problem("p", domain.name, dict.fromkeys(objects, "object"), frozenset(init), frozenset(goal)),
        short.actions,
    ).valid
    assert len(short.step_energies) == 6 and short.latent_trajectory.shape[0] == 7
