"""Plan shortening: a plan the search found, made shorter by moving its steps earlier and dropping the ones it no
longer needs, judged by what the world model predicted along it.

A greedy search that finishes one goal fact before the next (logistics' packages, one at a time) drives a vehicle to
the same place twice where one trip would do. Moving a step as early as it can run (the second package's load, into
the first trip) leaves the second trip's moves doing nothing, and action elimination drops them (Nakhost and Müller's
greedy action elimination; the moves, a plan-reordering step).

Everything here is read from the model, never from the simulator: the states along the plan are the search's own
(its decoded facts after each step), a step's effects are what changed across it, and its preconditions are the
facts of its state that relate to its arguments and that some step of the plan changes, kept where the model's
applicability head says the step could not run without them (one batched probe per plan). A shortened plan is a
proposal: the planner checks it under a fresh ensemble, as every plan, and falls back to the search's plan when the
check disagrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from planner.latent import LatentWorld, applicable_of

# read_steps: how many probed states are encoded at once
PROBE_BATCH = 16


@dataclass
class Step:
    """One step of a plan as the model reads it: its action, the changing facts it needs, its effects, and the
    facts it must not run beside (`avoid`: learned when a check rejected it in a new company, `shorten`)."""

    index: int  # its position in the search's plan
    action: int
    pre: frozenset[int]
    add: frozenset[int]
    delete: frozenset[int]
    avoid: frozenset[int] = frozenset()


def _apply(state: frozenset[int], s: Step) -> frozenset[int] | None:
    if not s.pre <= state or s.avoid & state:
        return None
    return (state - s.delete) | s.add


def _run(start: frozenset[int], steps: list[Step]) -> list[frozenset[int]] | None:
    """The states along `steps` from `start` (len(steps) + 1), or None when a step cannot run."""
    out = [start]
    for s in steps:
        nxt = _apply(out[-1], s)
        if nxt is None:
            return None
        out.append(nxt)
    return out


def read_steps(
    world: LatentWorld, actions: list[int], states: list[tuple[int, ...]], threshold: float = 0.5
) -> list[Step]:
    """Each step's preconditions and effects as the model sees them along one plan: `states` are the facts the
    search decoded before the plan and after each step. A fact of a step's state is a candidate precondition when
    some step of the plan changes it and it names one of the step's objects (or none: a fact of no arguments);
    the model's applicability head is asked, for each candidate at once (once per action and fact), whether the
    step could run without it."""
    sym = world.symbols
    sets = [frozenset(s) for s in states]
    adds = [sets[k + 1] - sets[k] for k in range(len(actions))]
    deletes = [sets[k] - sets[k + 1] for k in range(len(actions))]
    changing = frozenset().union(*adds, *deletes) if actions else frozenset()
    candidates: dict[int, list[int]] = {}  # step -> its candidate preconditions
    probes: dict[tuple[int, int], int] = {}  # (action, fact) -> the step whose state is probed
    for k, a in enumerate(actions):
        candidates[k] = [f for f in sorted(sets[k] & changing) if _relates(sym, a, f)]
        for f in candidates[k]:
            probes.setdefault((a, f), k)
    needed: set[tuple[int, int]] = set()
    if probes:
        keys = list(probes)
        # a few states at a time: the peak memory stays that of a search
        for i in range(0, len(keys), PROBE_BATCH):
            part = keys[i : i + PROBE_BATCH]
            latents = world.encode([sorted(sets[probes[key]] - {key[1]}) for key in part])
            used = sorted({a for a, _ in part})
            col = {a: c for c, a in enumerate(used)}
            p = applicable_of(world, latents, used)
            needed |= {key for j, key in enumerate(part) if float(p[j, col[key[0]]]) <= threshold}
    return [
        Step(
            k,
            a,
            frozenset(f for f in candidates[k] if (a, f) in needed),
            frozenset(adds[k]),
            frozenset(deletes[k]),
        )
        for k, a in enumerate(actions)
    ]


def _relates(sym, action: int, fact: int) -> bool:
    """Whether a fact names one of the action's objects, or none (a fact of no arguments)."""
    objs = sym.facts[fact][1:]
    return not objs or not set(sym.actions[action][1:]).isdisjoint(objs)


def company(sym, step: Step, state: tuple[int, ...], original: tuple[int, ...]) -> frozenset[int]:
    """The facts relating to a step's objects in a state it now runs in that were not in its state in the search's
    plan: what it is to avoid when a check finds it cannot run there."""
    return frozenset(f for f in set(state) - set(original) if _relates(sym, step.action, f))


def eliminate(start: frozenset[int], steps: list[Step], goal: frozenset[int], ok) -> list[Step]:
    """Greedy action elimination: drop a step, and every later step that then cannot run; keep the shorter plan
    when the goal still holds at its end and `ok(steps, states)` accepts it."""
    i = 0
    while i < len(steps):
        states, kept = [start], []
        for j, s in enumerate(steps):
            if j == i:
                continue
            nxt = _apply(states[-1], s)
            if nxt is not None:
                kept.append(s)
                states.append(nxt)
        if goal <= states[-1] and ok(kept, states):
            steps = kept  # try the same position again: the next step moved into it
        else:
            i += 1
    return steps


def hoist(start: frozenset[int], steps: list[Step], ok) -> list[Step]:
    """Each step in turn moves to the earliest position where it and every step after it still run, the states
    after its old position unchanged (so the goal still holds at the end)."""
    states = _run(start, steps)
    for j in range(1, len(steps)):
        for i in range(j):
            cand = steps[:i] + [steps[j]] + steps[i:j] + steps[j + 1 :]
            mid = _run(states[i], cand[i : j + 1])
            if mid is None or mid[-1] != states[j + 1]:
                continue
            cand_states = states[:i] + mid + states[j + 2 :]
            if not ok(cand, cand_states):
                continue
            steps, states = cand, cand_states
            break
    return steps


def shorten(
    steps: list[Step],
    start: tuple[int, ...],
    goal: list[int],
    ok=lambda steps, states: True,
    time_limit: float = 5.0,
) -> tuple[list[Step], list[tuple[int, ...]]]:
    """A plan no longer than `steps` (`read_steps`) reaching `goal` from `start` under the model's reading of its
    steps, and the facts of its states by that reading: elimination, then moves and elimination again until the plan
    stops getting shorter or `time_limit` seconds pass. `ok(steps, states)`: whether a candidate keeps the
    guardrails."""
    t0 = time.perf_counter()
    start, goal_set = frozenset(start), frozenset(goal)
    if len(steps) < 2:
        return list(steps), [tuple(sorted(f)) for f in _run(start, steps)]
    best = eliminate(start, steps, goal_set, ok)
    while time.perf_counter() - t0 < time_limit:
        nxt = eliminate(start, hoist(start, best, ok), goal_set, ok)
        if len(nxt) >= len(best):
            break
        best = nxt
    return best, [tuple(sorted(f)) for f in _run(start, best)]
