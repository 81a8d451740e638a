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
from typing import Protocol

from planner.record import PlanRecord

Atom = tuple[str, ...]


class Environment(Protocol):
    objects: list[str]
    goal: frozenset[Atom]

    def observe(self) -> frozenset[Atom]: ...

    def act(self, action: tuple[str, ...]) -> bool:
        """Carry out one action; False when it could not run (the state is then unchanged)."""


def run_mpc(
    planner, env: Environment, constraints=(), execute: int = 1, max_actions: int = 200, instance: str = "mpc"
) -> PlanRecord:
    """planner: a `planner.api.Planner`. execute: how many steps of each plan are carried out before replanning.
    -> the plan record of the run: its plan is every action sent to the environment, in order; its reason says how
    many plans were made and how many actions the environment did not carry out."""
    t0 = time.perf_counter()
    executed: list[tuple[str, ...]] = []
    status, reason, failed, replans, expansions = "no_plan", "", 0, 0, 0
    while len(executed) < max_actions:
        state = env.observe()
        if env.goal <= state:
            status, reason = "solved", ""
            break
        r = planner.plan(list(env.objects), state, env.goal, list(constraints), seed=replans)
        replans += 1
        expansions += r.expansions
        if r.status != "solved":
            reason = f"replan {replans}: {r.reason}"
            break
        if not r.actions:  # the model believes the goal holds, the observation says it does not
            reason = f"replan {replans}: the model thinks the goal holds; the environment disagrees"
            break
        for a in r.actions[: max(1, execute)]:
            executed.append(tuple(a))
            if not env.act(tuple(a)):
                failed += 1
                break  # the world did not follow the plan: observe and replan
    else:
        reason = f"stopped after {max_actions} actions"
    if status != "solved" and env.goal <= env.observe():
        status, reason = "solved", ""
    note = f"{replans} plan(s), {failed} action(s) the environment did not carry out"
    return PlanRecord(
        instance,
        "ami-planner-mpc",
        status,
        ["(" + " ".join(a) + ")" for a in executed],
        f"{reason}; {note}" if reason else note,
        time.perf_counter() - t0,
        expansions=expansions,
    )
