"""The optimal symbolic planner: breadth-first search over the grounded task (unit costs, so the first plan found is
shortest). It labels training data and is the reference in evaluation; the agent never calls it to answer."""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, field

from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.pddl import Domain, format_atom
from planner.worlds.strips import Task


@dataclass
class OracleResult:
    status: str  # "solved" | "no_plan"
    plan: list[str] = field(default_factory=list)  # PDDL labels
    reason: str = ""
    expansions: int = 0
    seconds: float = 0.0


def _spent(expansions: int, max_expansions: int, time_limit: float | None, t0: float, every: int) -> bool:
    """Past the expansion budget, or (checked every `every` expansions) past the time limit."""
    return expansions > max_expansions or (
        time_limit is not None and expansions % every == 0 and time.perf_counter() - t0 > time_limit
    )


def _budget_spent(expansions: int, t0: float) -> OracleResult:
    return OracleResult(
        "no_plan",
        reason=f"search budget spent after {expansions - 1} expansions",
        expansions=expansions - 1,
        seconds=time.perf_counter() - t0,
    )


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
        if _spent(expansions, max_expansions, time_limit, t0, every=1024):
            return _budget_spent(expansions, t0)
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


def solve_blocks(
    problem,
    names: dict[str, str],
    max_expansions: int = 200_000,
    time_limit: float | None = None,
    max_length: int | None = None,
) -> OracleResult:
    """Optimal plans for the 4-operator blocksworld under any names (`names`: `blocksworld_names(domain)`), for
    problems of many more blocks than breadth-first search reaches: A* over block moves (a move lifts a block and
    puts it down; with the hand empty at the start and goals of `on`/`ontable` facts, every optimal plan is a
    sequence of moves, so its length is twice theirs). The heuristic counts the blocks that must move at least once:
    a block whose goal place is not where it stands, every block above a block that must take another on top of it,
    and every block above one that must move. It never overestimates, so the first plan popped is optimal.
    max_length: no plan longer is looked for (`no_plan` when the optimal plan is longer)."""
    t0 = time.perf_counter()
    on, ontable, handempty = names["on"], names["ontable"], names["handempty"]
    blocks = sorted(problem.objects)
    idx = {b: i for i, b in enumerate(blocks)}
    n = len(blocks)
    below = [-2] * n  # -1: the table
    for a in problem.init:
        if a[0] == on:
            below[idx[a[1]]] = idx[a[2]]
        elif a[0] == ontable:
            below[idx[a[1]]] = -1
    if (handempty,) not in problem.init or -2 in below:
        raise ValueError("solve_blocks needs an initial state with the hand empty and every block placed")
    goal: list[tuple[int, int]] = []
    for a in problem.goal:
        if a[0] == on:
            goal.append((idx[a[1]], idx[a[2]]))
        elif a[0] == ontable:
            goal.append((idx[a[1]], -1))
        else:
            raise ValueError(f"solve_blocks takes goals of '{on}' and '{ontable}' facts, not '{a[0]}'")

    def h(st: tuple[int, ...]) -> int:
        above: list[list[int]] = [[] for _ in range(n)]
        for x, y in enumerate(st):
            if y >= 0:
                above[y].append(x)
        must = set()
        for x, y in goal:
            if st[x] != y:
                must.add(x)
                if y >= 0:  # y must be clear when x goes on it
                    must.update(above[y])
        stack = list(must)
        while stack:  # whatever stands on a block that moves moves too
            for z in above[stack.pop()]:
                if z not in must:
                    must.add(z)
                    stack.append(z)
        return len(must)

    bound = (max_length // 2) if max_length is not None else 1 << 30  # in moves
    start = tuple(below)
    parent: dict[tuple, tuple | None] = {start: None}
    g_of = {start: 0}
    heap = [(h(start), 0, start)]
    expansions = 0
    while heap:
        f, neg_g, st = heapq.heappop(heap)
        g = -neg_g
        if g != g_of[st]:
            continue
        if f == g:  # h == 0: every goal fact holds
            moves = []
            while parent[st] is not None:
                prev, move = parent[st]
                moves.append(move)
                st = prev
            plan = []
            for x, src, dst in reversed(moves):
                bx = blocks[x]
                plan.append(
                    format_atom((names["pick-up"], bx))
                    if src < 0
                    else format_atom((names["unstack"], bx, blocks[src]))
                )
                plan.append(
                    format_atom((names["put-down"], bx))
                    if dst < 0
                    else format_atom((names["stack"], bx, blocks[dst]))
                )
            return OracleResult("solved", plan, "", expansions, time.perf_counter() - t0)
        expansions += 1
        if _spent(expansions, max_expansions, time_limit, t0, every=256):
            return _budget_spent(expansions, t0)
        covered = set(st)
        tops = [x for x in range(n) if x not in covered]
        for x in tops:
            for dst in [-1, *tops]:
                if dst == x or dst == st[x]:
                    continue
                nxt = list(st)
                nxt[x] = dst
                nxt = tuple(nxt)
                if g + 1 < g_of.get(nxt, 1 << 30):
                    f_next = g + 1 + h(nxt)
                    if f_next > bound:
                        continue
                    g_of[nxt] = g + 1
                    parent[nxt] = (st, (x, st[x], dst))
                    heapq.heappush(heap, (f_next, -(g + 1), nxt))
    return OracleResult(
        "no_plan",
        reason=(
            f"no plan of at most {max_length} steps"
            if max_length is not None
            else "the goal is unreachable from the initial state (search space exhausted)"
        ),
        expansions=expansions,
        seconds=time.perf_counter() - t0,
    )


def solve_optimal(
    domain: Domain, problem, time_limit: float | None = None, blocks_expansions: int = 200_000
) -> OracleResult:
    """An optimal plan: A* over block moves (`solve_blocks`, at most `blocks_expansions`) where the problem is
    blocksworld-like (the hand empty at the start, goals of `on`/`ontable` facts), breadth-first search otherwise."""
    names = blocksworld_names(domain)
    if names is not None:
        try:
            return solve_blocks(problem, names, max_expansions=blocks_expansions, time_limit=time_limit)
        except ValueError:  # a start with a block in the hand, or goals of other facts
            pass
    return solve(Task(domain, problem), time_limit=time_limit)
