"""Exact steps-to-go for the critic, made by the symbolic simulator on small generated problems.

The trajectories of `planner.data` label only states on an optimal plan, so a critic trained on them has never seen
the states a search wanders into off that plan. Here a small problem's whole reachable state space is enumerated
(breadth-first from its initial state, for any STRIPS domain), and for a goal every state gets its exact optimal
distance by a breadth-first search backwards from the states that satisfy it. A sample is then (a state, a goal,
its distance) with the distance drawn evenly over the values that occur, so near and far states weigh alike.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from planner.data import fact_ids
from planner.encoding import ProblemSymbols
from planner.worlds.pddl import Domain, Problem
from planner.worlds.strips import Task


class StateSpaceTooLarge(ValueError):
    """The problem has more reachable states than the enumeration allows."""


@dataclass
class StateSpace:
    task: Task
    states: list[int]  # reachable states (fact bitmasks), init first
    predecessors: list[list[int]]  # state index -> indices of the states one action before it

    @classmethod
    def enumerate(cls, task: Task, max_states: int = 50_000) -> StateSpace:
        index = {task.init: 0}
        states = [task.init]
        preds: list[list[int]] = [[]]
        frontier = deque([0])
        actions = task.actions
        while frontier:
            i = frontier.popleft()
            s = states[i]
            for a in actions:
                if s & a.pre != a.pre:
                    continue
                nxt = (s & ~a.delete) | a.add
                j = index.get(nxt)
                if j is None:
                    if len(states) >= max_states:
                        raise StateSpaceTooLarge(f"more than {max_states} reachable states")
                    j = index[nxt] = len(states)
                    states.append(nxt)
                    preds.append([])
                    frontier.append(j)
                if j != i:
                    preds[j].append(i)
        return cls(task, states, preds)

    def distances(self, goal: int) -> list[int]:
        """Optimal steps from each state to one that holds every fact of `goal` (a bitmask); -1: unreachable."""
        dist = [-1] * len(self.states)
        frontier = deque()
        for i, s in enumerate(self.states):
            if s & goal == goal:
                dist[i] = 0
                frontier.append(i)
        while frontier:
            j = frontier.popleft()
            for i in self.predecessors[j]:
                if dist[i] < 0:
                    dist[i] = dist[j] + 1
                    frontier.append(i)
        return dist


@dataclass
class ValueSample:
    n_objects: int
    state: list[int]  # candidate-fact indices that hold
    goal: list[int]  # candidate-fact indices
    to_go: int


class ValueSampler:
    """(state, goal, exact steps-to-go) samples from generated problems small enough to enumerate. Each enumerated
    problem serves `goals_per_problem` goals (its own and those of other generated problems with the same objects)
    and `samples_per_goal` samples per goal."""

    def __init__(
        self,
        domain: Domain,
        symbols,
        sample_problem,
        rng: random.Random,
        max_states: int = 50_000,
        goals_per_problem: int = 8,
        samples_per_goal: int = 32,
        pool_problems: int = 4,
        skeleton=None,
    ):
        """`symbols(objects, init) -> ProblemSymbols`; `sample_problem(n, skeleton=None) -> Problem` (a generated
        problem); `skeleton(n)`: a spec world's skeleton (None elsewhere), whose problems share candidate symbols:
        a batch then holds the samples of one skeleton."""
        self.skeleton = skeleton
        self.domain = domain
        self.symbols = symbols
        self.sample_problem = sample_problem
        self.rng = rng
        self.max_states = max_states
        self.goals_per_problem = goals_per_problem
        self.samples_per_goal = samples_per_goal
        self.pool = pool_problems * goals_per_problem * samples_per_goal
        self._queue: dict[int, list[ValueSample]] = {}
        self._chunks: dict[int, tuple] = {}  # spec worlds: n -> (symbols, samples left) of one skeleton
        self.too_large: set[int] = set()

    def _fill(self, n: int, sk=None) -> list[ValueSample]:
        def draw() -> Problem:
            return self.sample_problem(n) if sk is None else self.sample_problem(n, skeleton=sk)

        problem = draw()
        task = Task(self.domain, problem)
        try:
            space = StateSpace.enumerate(task, self.max_states)
        except StateSpaceTooLarge:
            self.too_large.add(n)
            raise
        sym: ProblemSymbols = self.symbols(list(problem.objects), problem.init)

        out = []
        goals = [problem.goal] + [draw().goal for _ in range(self.goals_per_problem - 1)]
        for goal_atoms in goals:
            known = [g for g in goal_atoms if g in task.fact_index]
            if len(known) < len(goal_atoms):
                continue  # a goal fact that can never hold here
            dist = space.distances(task.mask(known))
            by_distance: dict[int, list[int]] = {}
            for i, d in enumerate(dist):
                if d >= 0:
                    by_distance.setdefault(d, []).append(i)
            goal_ids = [sym.fact_index[g] for g in known if g in sym.fact_index]
            levels = sorted(by_distance)
            for _ in range(self.samples_per_goal):
                d = self.rng.choice(levels)
                i = self.rng.choice(by_distance[d])
                out.append(ValueSample(n, fact_ids(task, sym, space.states[i]), goal_ids, d))
        if sk is None:
            self._queue.setdefault(n, []).extend(out)
        return out

    def batch(self, n_objects: int, size: int, positional) -> tuple[list[ValueSample], ProblemSymbols]:
        """`size` samples and the symbols they index: of one object count (`positional(n)`), or in a spec world
        of one skeleton (a skeleton whose state space is too large is skipped for another, a few times)."""
        if self.skeleton is None:
            return [self.sample(n_objects) for _ in range(size)], positional(n_objects)
        sym, samples = self._chunks.get(n_objects, (None, []))
        if len(samples) < size:
            for tries in range(20):
                sk = self.skeleton(n_objects)
                try:
                    samples = self._fill(n_objects, sk)
                    break
                except StateSpaceTooLarge:
                    if tries == 19:
                        raise
            self.rng.shuffle(samples)
            sym = self.symbols(list(sk.objects), sk.static)
        self._chunks[n_objects] = (sym, samples[size:])
        return samples[:size], sym

    def sample(self, n_objects: int) -> ValueSample:
        """One sample; samples are drawn from a shuffled pool of several problems' samples, refilled when it runs
        below `pool_problems` problems' worth."""
        q = self._queue.setdefault(n_objects, [])
        if len(q) < self.pool // 2:
            while len(q) < self.pool:
                self._fill(n_objects)
            self.rng.shuffle(q)
        return q.pop()
