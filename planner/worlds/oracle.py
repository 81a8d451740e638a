"""The optimal symbolic planner: breadth-first search over the grounded task (unit costs, so the first plan found is
shortest). It labels training data and is the reference in evaluation; the agent never calls it to answer."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from planner.worlds.strips import Task


@dataclass
class OracleResult:
    status: str  # "solved" | "no_plan"
    plan: list[str] = field(default_factory=list)  # PDDL labels
    reason: str = ""
    expansions: int = 0
    seconds: float = 0.0


def solve(task: Task, max_expansions: int = 2_000_000, time_limit: float | None = None) -> OracleResult:
    t0 = time.perf_counter()
    if task.is_goal(task.init):
        return OracleResult("solved", [], "", 0, time.perf_counter() - t0)
    if not task.goal_reachable:
        return OracleResult(
            "no_plan",
            reason="the goal is unreachable: some goal fact can never hold",
            seconds=time.perf_counter() - t0,
        )
    actions = task.actions
    parent: dict[int, tuple[int, int]] = {task.init: (-1, -1)}
    frontier = deque([task.init])
    expansions = 0
    goal = task.goal
    while frontier:
        state = frontier.popleft()
        expansions += 1
        if expansions > max_expansions or (
            time_limit is not None and expansions % 1024 == 0 and time.perf_counter() - t0 > time_limit
        ):
            return OracleResult(
                "no_plan",
                reason=f"search budget spent after {expansions - 1} expansions",
                expansions=expansions - 1,
                seconds=time.perf_counter() - t0,
            )
        for i, a in enumerate(actions):
            if state & a.pre == a.pre:
                nxt = (state & ~a.delete) | a.add
                if nxt in parent:
                    continue
                parent[nxt] = (state, i)
                if nxt & goal == goal:
                    plan = []
                    s = nxt
                    while s != task.init:
                        s, ai = parent[s]
                        plan.append(actions[ai].label)
                    return OracleResult("solved", plan[::-1], "", expansions, time.perf_counter() - t0)
                frontier.append(nxt)
    return OracleResult(
        "no_plan",
        reason="the goal is unreachable from the initial state (search space exhausted)",
        expansions=expansions,
        seconds=time.perf_counter() - t0,
    )
