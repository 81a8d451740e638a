"""The symbolic simulator as an environment for the MPC loop (planner/mpc.py): it carries out the actions it is
sent and reports the state it is in. `slip` makes it stochastic: with that probability an applicable action does
not happen (the block slips from the gripper), so a plan made in advance can go stale and the loop must replan."""

from __future__ import annotations

import random

from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import simulate


class SimulatedEnvironment:
    def __init__(self, domain: Domain, problem: Problem, slip: float = 0.0, seed: int = 0):
        if not 0.0 <= slip < 1.0:
            raise ValueError(f"slip must be in [0, 1), got {slip}")
        self.domain = domain
        self.objects = list(problem.objects)
        self.goal = frozenset(problem.goal)
        self.state = frozenset(problem.init)
        self.slip = slip
        self.rng = random.Random(seed)
        self.trace: list[tuple[tuple[str, ...], bool]] = []  # (action, carried out)

    def observe(self) -> frozenset:
        return self.state

    def act(self, action: tuple[str, ...]) -> bool:
        if action[0] not in self.domain.actions or len(action) - 1 != len(
            self.domain.actions[action[0]].parameters
        ):
            self.trace.append((action, False))
            return False
        nxt, unmet = simulate(self.domain, self.state, action)
        ok = not unmet and self.rng.random() >= self.slip
        if ok:
            self.state = nxt
        self.trace.append((action, ok))
        return ok
