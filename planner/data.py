"""Training data for the world model, made by the symbolic simulator (its job: make data, judge results).

A trajectory is K steps in one generated problem: the facts of each state, the action taken, the actions applicable
in each state, a goal, and the optimal steps-to-go of each state where known (-1 elsewhere). Half the trajectories
follow an optimal plan (they label the critic), the rest are random walks (they cover the dynamics).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import torch

from planner.encoding import ProblemSymbols, Vocabulary
from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve
from planner.worlds.pddl import Domain, Problem
from planner.worlds.strips import Task


def fact_ids(task: Task, sym: ProblemSymbols, state: int) -> list[int]:
    """The candidate-fact indices of a simulator state (static facts included)."""
    return [
        sym.fact_index[f]
        for f in task.state_facts(state & ~task.static_mask | task.static_mask)
        if f in sym.fact_index
    ]


@dataclass
class Trajectory:
    n_objects: int
    states: list[list[int]]  # K+1 lists of candidate-fact indices that hold
    actions: list[int]  # K candidate-action indices
    applicable: list[list[int]]  # K+1 lists of candidate-action indices that can run
    goal: list[int]  # candidate-fact indices
    to_go: list[int]  # K+1 optimal steps to the goal, -1 where unknown
    objects: tuple[str, ...] = ()  # the problem's objects, in the order the fact and action indices use


class TrajectorySampler:
    def __init__(
        self,
        domain: Domain,
        vocab: Vocabulary,
        seed_problems: list[Problem] | None = None,
        rng: random.Random | int = 0,
        full_goal_fraction: float = 0.0,
        walk_start: int = 0,
    ):
        """`full_goal_fraction`: the share of generated problems whose goal is every fact the generator can ask
        for (the whole target towers in blocksworld) rather than a random subset: long plans, which the critic
        must see to learn steps-to-go past a handful. `walk_start`: a random walk first takes 0..walk_start
        random steps it does not record, so its first state is any reachable state, not only a generated initial
        one (in blocksworld those always have the hand empty); 0 draws nothing (the stream stays as it was)."""
        self.domain = domain
        self.walk_start = walk_start
        self.full_goal_fraction = full_goal_fraction
        self.vocab = vocab
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.seeds = seed_problems or []
        self.gens = (
            [ProblemGenerator(domain, s, self.rng) for s in self.seeds]
            if self.seeds
            else [ProblemGenerator(domain, None, self.rng)]
        )
        self._symbols: dict[tuple[str, ...], ProblemSymbols] = {}

    def symbols(self, objects: list[str], init=None) -> ProblemSymbols:
        """The candidate symbols of a problem's objects (and, in a typed world, of its static facts)."""
        static = frozenset(f for f in init or () if f[0] in self.vocab.static) if self.vocab.typed else None
        key = (tuple(objects), static)
        if key not in self._symbols:
            if len(self._symbols) > 4096:
                self._symbols.clear()
            self._symbols[key] = ProblemSymbols(self.vocab, list(objects), static)
        return self._symbols[key]

    @property
    def has_skeletons(self) -> bool:
        return self.gens[0].spec is not None and not self.seeds

    def skeleton(self, n_objects: int, counts: dict | None = None):
        """A spec world's skeleton for `n_objects` objects (`counts` narrows some groups' counts); None for other
        worlds (problems then share nothing but their object count)."""
        return self.gens[0].skeleton(n_objects, counts) if self.has_skeletons else None

    def batch(
        self, n_objects: int, size: int, steps: int, optimal_fraction: float
    ) -> tuple[list, ProblemSymbols]:
        """`size` trajectories of `n_objects`-object problems and the candidate symbols their indices refer to.
        A spec world's batch shares one skeleton (so one symbol table); other worlds share the object count."""
        sk = self.skeleton(n_objects)
        if sk is None:
            trajs = [self.sample(n_objects, steps, optimal_fraction) for _ in range(size)]
            return trajs, self.positional(n_objects)
        trajs = [self.sample(n_objects, steps, optimal_fraction, skeleton=sk) for _ in range(size)]
        return trajs, self.symbols(list(sk.objects), sk.static)

    def positional(self, n_objects: int) -> ProblemSymbols:
        """Candidate facts and actions depend only on the object count (rows hold object positions), so one
        symbol table per count serves every problem of that size in a batch. In a world with static
        preconditions they follow the static facts too: seed problems of one size must share their objects and
        static facts (random walks keep both), and their symbols serve."""
        if self.vocab.typed and self.seeds:
            fitting = [p for p in self.seeds if len(p.objects) == n_objects]
            tables = {
                (tuple(p.objects), frozenset(f for f in p.init if f[0] in self.vocab.static)) for p in fitting
            }
            if len(tables) != 1:
                raise ValueError(
                    f"seed problems of {n_objects} objects must share their objects and static facts in a world "
                    "with static preconditions"
                )
            return self.symbols(list(fitting[0].objects), fitting[0].init)
        return self.symbols([f"o{i}" for i in range(n_objects)])

    def object_counts(self, lo: int, hi: int) -> list[int]:
        """The object counts to train on: lo..hi with a generator; with seed problems, the seeds' own counts (those
        in lo..hi, or all of them when none is)."""
        if not self.seeds:
            return list(range(lo, hi + 1))
        counts = sorted({len(p.objects) for p in self.seeds})
        return [n for n in counts if lo <= n <= hi] or counts

    def problem(self, n_objects: int, skeleton=None) -> Problem:
        # (no draw when the fraction is 0: the stream of problems stays what it was before the option existed)
        full = self.full_goal_fraction > 0 and self.rng.random() < self.full_goal_fraction
        goal_facts = sys.maxsize if full else None  # the generator caps it at the facts there are
        if skeleton is not None:
            return self.gens[0].on_skeleton(skeleton, goal_facts=goal_facts)
        if self.seeds:
            fitting = [g for g in self.gens if len(g.seed.objects) == n_objects]
            if not fitting:
                raise ValueError(f"no seed problem has {n_objects} objects")
            return self.rng.choice(fitting).sample(goal_facts=goal_facts)
        return self.gens[0].sample(n_objects, goal_facts=goal_facts)

    def sample(
        self,
        n_objects: int,
        steps: int,
        optimal_fraction: float = 0.5,
        max_expansions: int = 200_000,
        skeleton=None,
    ) -> Trajectory:
        for _ in range(100):
            problem = self.problem(n_objects, skeleton)
            task = Task(self.domain, problem) if skeleton is None else self.gens[0].task_on(skeleton, problem)
            sym = self.symbols(list(problem.objects), problem.init)
            follow = self.rng.random() < optimal_fraction
            plan_ids: list[int] = []
            if follow:
                r = solve(task, max_expansions=max_expansions)
                if r.status != "solved":
                    continue
                plan_ids = [
                    task.action_index[(lab[1:-1].split()[0], tuple(lab[1:-1].split()[1:]))] for lab in r.plan
                ]
            return self._roll(task, sym, plan_ids, steps, follow)
        raise RuntimeError("could not sample a solvable problem in 100 tries")

    @staticmethod
    def _known(task: Task, sym: ProblemSymbols, state: int) -> list[int]:
        """The actions that can run, among the candidates (a ground action that repeats an object, such as driving
        from a location to itself, changes nothing and is no candidate)."""
        return [
            i
            for i in task.applicable(state)
            if (task.actions[i].name, *task.actions[i].args) in sym.action_index
        ]

    def _roll(
        self, task: Task, sym: ProblemSymbols, plan_ids: list[int], steps: int, follow: bool
    ) -> Trajectory:
        state = task.init
        to_go_start = len(plan_ids) if follow else -1
        start = 0
        if follow and len(plan_ids) > steps:
            start = self.rng.randint(0, len(plan_ids) - steps)
            for i in plan_ids[:start]:
                state = task.apply(state, task.actions[i])
        if not follow and self.walk_start > 0:
            for _ in range(self.rng.randint(0, self.walk_start)):
                app = self._known(task, sym, state)
                if not app:
                    break
                state = task.apply(state, task.actions[self.rng.choice(app)])
        states, actions, applicable, to_go = [], [], [], []
        for k in range(steps + 1):
            app = self._known(task, sym, state)
            states.append(fact_ids(task, sym, state))
            applicable.append([sym.action_index[(task.actions[i].name, *task.actions[i].args)] for i in app])
            j = start + k
            to_go.append(to_go_start - j if follow and j <= len(plan_ids) else -1)
            if k == steps:
                break
            if follow and j < len(plan_ids):
                a = plan_ids[j]
            else:
                a = self.rng.choice(app)
            ga = task.actions[a]
            actions.append(sym.action_index[(ga.name, *ga.args)])
            state = task.apply(state, ga)
        goal = [sym.fact_index[g] for g in task.problem.goal if g in sym.fact_index]
        return Trajectory(len(sym.objects), states, actions, applicable, goal, to_go, tuple(sym.objects))


@dataclass
class Batch:
    """Tensors for B trajectories of one object count. F candidate facts, M candidate actions, A max arity."""

    fact_rows: torch.Tensor  # (B, K+1, Fmax, 1+A) rows of true facts
    fact_pad: torch.Tensor  # (B, K+1, Fmax)
    state_targets: torch.Tensor  # (B, K+1, F) multi-hot
    action_rows: torch.Tensor  # (B, K, 1+A)
    applicable: torch.Tensor  # (B, K+1, M) multi-hot
    goal_rows: torch.Tensor  # (B, G, 1+A)
    goal_pad: torch.Tensor  # (B, G)
    to_go: torch.Tensor  # (B, K+1) float, -1 unknown
    symbols: ProblemSymbols


def collate(trajs: list[Trajectory], symbols: ProblemSymbols) -> Batch:
    b, k1 = len(trajs), len(trajs[0].states)
    a = symbols.fact_rows.shape[1]
    fmax = max(len(s) for t in trajs for s in t.states)
    gmax = max(1, max(len(t.goal) for t in trajs))
    fact_rows = torch.zeros(b, k1, fmax, a, dtype=torch.long)
    fact_pad = torch.ones(b, k1, fmax, dtype=torch.bool)
    targets = torch.zeros(b, k1, len(symbols.facts))
    applicable = torch.zeros(b, k1, len(symbols.actions))
    goal_rows = torch.zeros(b, gmax, a, dtype=torch.long)
    goal_pad = torch.ones(b, gmax, dtype=torch.bool)
    # one indexed write per tensor (a write per state took 0.044 s a batch of 64, this 0.019 s)
    fb, fk, fp, ff, ab, ak, aa, gb, gp, gf = ([] for _ in range(10))
    for i, t in enumerate(trajs):
        for j, s in enumerate(t.states):
            fb += [i] * len(s)
            fk += [j] * len(s)
            fp += range(len(s))
            ff += s
            ab += [i] * len(t.applicable[j])
            ak += [j] * len(t.applicable[j])
            aa += t.applicable[j]
        gb += [i] * len(t.goal)
        gp += range(len(t.goal))
        gf += t.goal
    fb, fk, fp, ff = (torch.tensor(x, dtype=torch.long) for x in (fb, fk, fp, ff))
    fact_rows[fb, fk, fp] = symbols.fact_rows[ff]
    fact_pad[fb, fk, fp] = False
    targets[fb, fk, ff] = 1.0
    applicable[
        torch.tensor(ab, dtype=torch.long),
        torch.tensor(ak, dtype=torch.long),
        torch.tensor(aa, dtype=torch.long),
    ] = 1.0
    gb, gp, gf = (torch.tensor(x, dtype=torch.long) for x in (gb, gp, gf))
    goal_rows[gb, gp] = symbols.fact_rows[gf]
    goal_pad[gb, gp] = False
    action_rows = symbols.action_rows[torch.tensor([t.actions for t in trajs])]
    to_go = torch.tensor([t.to_go for t in trajs], dtype=torch.float)
    return Batch(fact_rows, fact_pad, targets, action_rows, applicable, goal_rows, goal_pad, to_go, symbols)
