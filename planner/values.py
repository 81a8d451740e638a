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

# single-fact samples (`ValueSampler._fill_facts`): the random walks whose states are labelled, and how many
# relevance spaces (one a package, in logistics) one generated problem serves
WALKS = 8
WALK_STEPS = 32
SPACES_PER_PROBLEM = 2


class StateSpaceTooLarge(ValueError):
    """The problem has more reachable states than the enumeration allows."""


@dataclass
class StateSpace:
    task: Task
    states: list[int]  # reachable states (fact bitmasks), init first
    predecessors: list[list[int]]  # state index -> indices of the states one action before it

    @classmethod
    def enumerate(
        cls, task: Task, max_states: int = 50_000, starts: list[int] | None = None, facts: int | None = None
    ) -> StateSpace:
        """The states reachable from the task's initial state, or from `starts`. With `facts` (a bitmask), states
        are kept to those facts and only the actions that add one of them run (`relevant_facts`): the space of
        what can matter to a goal."""
        keep = -1 if facts is None else facts
        actions = task.actions if facts is None else [a for a in task.actions if a.add & facts]
        states = list(dict.fromkeys(s & keep for s in ([task.init] if starts is None else starts)))
        index = {s: i for i, s in enumerate(states)}
        preds: list[list[int]] = [[] for _ in states]
        frontier = deque(range(len(states)))
        while frontier:
            i = frontier.popleft()
            s = states[i]
            for a in actions:
                if s & a.pre != a.pre:
                    continue
                nxt = ((s & ~a.delete) | a.add) & keep
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


def relevant_facts(task: Task, goal: int) -> int:
    """The facts that can matter to reaching `goal` (a bitmask): its own, and the preconditions of every action
    that adds one that matters (backward relevance). An action that adds none of them never helps: dropped from a
    plan, every later action's preconditions still hold, so a state's distance to the goal is the distance of its
    part on these facts, moved by the actions that add one of them (one package of a logistics problem and every
    vehicle, whatever the other packages do)."""
    rel = goal
    while True:
        grown = rel
        for a in task.actions:
            if a.add & rel:
                grown |= a.pre
        if grown == rel:
            return rel
        rel = grown


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
        single_facts: bool = False,
    ):
        """`symbols(objects, init) -> ProblemSymbols`; `sample_problem(n, skeleton=None) -> Problem` (a generated
        problem); `skeleton(n)`: a spec world's skeleton (None elsewhere), whose problems share candidate symbols:
        a batch then holds the samples of one skeleton. `single_facts`: goals of one fact, on states of random walks
        of problems of any size (`_fill_facts`), instead of the generated goals on every state of problems small
        enough to enumerate."""
        self.skeleton = skeleton
        self.single_facts = single_facts
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
        if self.single_facts:
            out = self._fill_facts(n, problem, task, draw)
            if sk is None:
                self._queue.setdefault(n, []).extend(out)
            return out
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

    def _fill_facts(self, n: int, problem: Problem, task: Task, draw) -> list[ValueSample]:
        """Samples whose goal is one fact: the states are those of random walks from the problem's start, each
        labelled with its exact distance to the fact, found in the space of the facts that can matter to it
        (`relevant_facts`, enumerated from the walks' states). Problems far too large to enumerate qualify
        whenever that space is small (in logistics: one package and the vehicles). The facts are drawn from
        `goals_per_problem` generated goals; those of `SPACES_PER_PROBLEM` relevance spaces are kept."""
        sym: ProblemSymbols = self.symbols(list(problem.objects), problem.init)
        walked = self._walks(task)
        drawn = [g for _ in range(self.goals_per_problem) for g in draw().goal if g in task.fact_index]
        groups: dict[int, list] = {}
        for g in dict.fromkeys(drawn):
            groups.setdefault(relevant_facts(task, task.mask([g])), []).append(g)
        out = []
        for rel in self.rng.sample(sorted(groups), min(SPACES_PER_PROBLEM, len(groups))):
            try:
                space = StateSpace.enumerate(task, self.max_states, starts=walked, facts=rel)
            except StateSpaceTooLarge:
                self.too_large.add(n)
                raise
            where = {s: i for i, s in enumerate(space.states)}
            for g in groups[rel]:
                dist = space.distances(task.mask([g]))
                by_distance: dict[int, list[int]] = {}
                for s in walked:
                    d = dist[where[s & rel]]
                    if d >= 0:
                        by_distance.setdefault(d, []).append(s)
                levels = sorted(by_distance)
                for _ in range(self.samples_per_goal if levels else 0):
                    d = self.rng.choice(levels)
                    s = self.rng.choice(by_distance[d])
                    out.append(ValueSample(n, fact_ids(task, sym, s), [sym.fact_index[g]], d))
        return out

    def _walks(self, task: Task) -> list[int]:
        """The distinct states of `WALKS` random walks of `WALK_STEPS` steps from the task's initial state."""
        seen: dict[int, None] = {}
        for _ in range(WALKS):
            s = task.init
            for _ in range(WALK_STEPS):
                seen[s] = None
                can = task.applicable(s)
                if not can:
                    break
                s = task.apply(s, task.actions[self.rng.choice(can)])
            seen[s] = None
        return list(seen)

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
                    # (single-fact fills can hold fewer than a batch: more problems on the same skeleton)
                    while samples and len(samples) < size:
                        samples += self._fill(n_objects, sk)
                except StateSpaceTooLarge:
                    if tries == 19:
                        raise
                    continue
                if samples:
                    break
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
