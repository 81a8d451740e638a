"""Model-predictive control: act, observe, replan. When an environment is attached, the planner plans from the
observed state, the first step(s) of the plan are carried out in the environment, the new state is observed, and
the planner plans again from there, until the observed state satisfies the goal. An action that fails in the
environment (or a world that does not do what the model predicted) is simply seen in the next observation.

The environment is anything with `objects`, `goal`, `observe()` and `act(action) -> bool`; the symbolic simulator
provides one (planner/worlds/env.py). The loop only sends actions and reads observations: it never asks the
environment what to do. It imports nothing from the simulator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

Atom = tuple[str, ...]


class Environment(Protocol):
    objects: list[str]
    goal: frozenset[Atom]

    def observe(self) -> frozenset[Atom]: ...

    def act(self, action: tuple[str, ...]) -> bool:
        """Carry out one action; False when it could not run (the state is then unchanged)."""


@dataclass
class MPCResult:
    status: str  # solved | no_plan
    executed: list[tuple[str, ...]] = field(default_factory=list)  # actions sent to the environment, in order
    failed: int = 0  # of those, how many the environment could not carry out
    replans: int = 0  # planner calls
    reason: str = ""
    expansions: int = 0
    seconds: float = 0.0

    @property
    def labels(self) -> list[str]:
        return ["(" + " ".join(a) + ")" for a in self.executed]


def run_mpc(planner, env: Environment, constraints=(), execute: int = 1, max_actions: int = 200) -> MPCResult:
    """planner: a `planner.api.Planner`. execute: how many steps of each plan are carried out before replanning."""
    t0 = time.perf_counter()
    res = MPCResult("no_plan")
    while len(res.executed) < max_actions:
        state = env.observe()
        if env.goal <= state:
            res.status, res.reason = "solved", ""
            break
        r = planner.plan(list(env.objects), state, env.goal, list(constraints), seed=res.replans)
        res.replans += 1
        res.expansions += r.expansions
        if r.status != "solved":
            res.reason = f"replan {res.replans}: {r.reason}"
            break
        if not r.actions:  # the model believes the goal holds, the observation says it does not
            res.reason = f"replan {res.replans}: the model thinks the goal holds; the environment disagrees"
            break
        for a in r.actions[: max(1, execute)]:
            res.executed.append(tuple(a))
            if not env.act(tuple(a)):
                res.failed += 1
                break  # the world did not follow the plan: observe and replan
    else:
        res.reason = f"stopped after {max_actions} actions"
    if res.status != "solved" and env.goal <= env.observe():
        res.status, res.reason = "solved", ""
    res.seconds = time.perf_counter() - t0
    return res
