"""Random problems for any STRIPS domain: reachable initial states and goals, with the object count as a parameter.

Blocksworld (and any domain with its structure under other names, such as mystery blocksworld) gets a dedicated
generator of random towers for any number of blocks. A domain with a world spec beside its file
(`logistics.problems.yaml` beside `logistics.pddl`, see `planner.worlds.spec`) is generated from the spec. Any
other domain takes a seed problem and generates by random walks from its initial state (so every state is reachable
and every goal solvable).
"""

from __future__ import annotations

import itertools
import random
import string

from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.errors import WorldError
from planner.worlds.pddl import Atom, Domain, Problem, format_atom
from planner.worlds.spec import Skeleton, WorldSpec
from planner.worlds.strips import Task


def object_names(n: int) -> list[str]:
    """a, b, ..., z, aa, ab, ...: PlanBench's letters, extended past 26."""
    out = []
    for size in itertools.count(1):
        for combo in itertools.product(string.ascii_lowercase, repeat=size):
            out.append("".join(combo))
            if len(out) == n:
                return out
    return out


def random_towers(blocks: list[str], rng: random.Random) -> list[list[str]]:
    """A random arrangement of the blocks into towers (bottom first)."""
    order = blocks[:]
    rng.shuffle(order)
    p_cut = rng.random()
    towers = [[order[0]]]
    for b in order[1:]:
        if rng.random() < p_cut:
            towers.append([b])
        else:
            towers[-1].append(b)
    return towers


def towers_facts(towers: list[list[str]], names: dict[str, str]) -> set[Atom]:
    facts: set[Atom] = {(names["handempty"],)}
    for t in towers:
        facts.add((names["ontable"], t[0]))
        facts.add((names["clear"], t[-1]))
        for below, above in zip(t, t[1:]):
            facts.add((names["on"], above, below))
    return facts


class ProblemGenerator:
    """Random solvable problems of one domain. `sample(n_objects)` for blocksworld-like domains and domains with a
    world spec; other domains need `seed` (a problem whose initial state the random walks start from) and keep its
    objects."""

    def __init__(self, domain: Domain, seed: Problem | None = None, rng: random.Random | int | None = None):
        self.domain = domain
        self.seed = seed
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.bw = blocksworld_names(domain)
        self.spec = WorldSpec.beside(domain) if self.bw is None and seed is None else None
        if self.bw is None and seed is None and self.spec is None:
            raise WorldError(
                f"domain '{domain.name}' has no dedicated generator: pass a seed problem (--problem P) whose "
                "initial state the random walks start from, or write a world spec beside the domain file "
                "(see docs/worlds.md)",
                source=domain.source,
            )
        self._seed_task = Task(domain, seed) if seed is not None and self.bw is None else None
        self._universes: dict = {}

    def task_on(self, sk: Skeleton, problem: Problem) -> Task:
        """The grounded task of a problem on a spec world's skeleton, rebased from the skeleton's universe
        (grounded once per skeleton: grounding each problem anew cost most of a training step)."""
        key = (tuple(sk.objects), sk.static)
        u = self._universes.get(key)
        if u is None:
            if len(self._universes) > 256:
                self._universes.clear()
            u = self._universes[key] = self.spec.universe(self.domain, sk)
        return u.rebased(problem)

    def skeleton(self, n_objects: int | None = None, counts: dict | None = None) -> Skeleton | None:
        """A spec world's fixed structure for problems of `n_objects` (None for other domains); `counts` narrows
        some groups' counts."""
        return self.spec.skeleton(self.rng, n_objects, counts) if self.spec is not None else None

    def on_skeleton(self, sk: Skeleton, name: str = "generated", goal_facts: int | None = None) -> Problem:
        """A solvable problem on a spec world's skeleton."""
        for _ in range(1000):
            try:
                p = self.spec.problem(self.domain, sk, self.rng, name, goal_facts)
            except WorldError:
                break
            if self.task_on(sk, p).goal_reachable:
                return p
        raise WorldError("this skeleton allows no solvable problem", source=self.spec.source)

    def sample(
        self,
        n_objects: int | None = None,
        name: str = "generated",
        goal_facts: int | None = None,
        walk_length: int = 30,
    ) -> Problem:
        if self.bw is not None:
            n = n_objects if n_objects is not None else (len(self.seed.objects) if self.seed else 4)
            if n < 1:
                raise WorldError(f"the object count must be at least 1, got {n}")
            return self._sample_blocksworld(n, name, goal_facts)
        if self.spec is not None:
            return self.spec.sample(self.domain, self.rng, n_objects, name=name, goal_facts=goal_facts)
        if n_objects is not None and n_objects != len(self.seed.objects):
            raise WorldError(
                f"domain '{self.domain.name}' has no dedicated generator, so problems keep the seed's "
                f"{len(self.seed.objects)} objects; got --objects {n_objects}",
                hint="Pass a seed problem with that many objects",
            )
        return self._sample_walk(name, goal_facts, walk_length)

    def _sample_blocksworld(self, n: int, name: str, goal_facts: int | None) -> Problem:
        names = self.bw
        blocks = object_names(n)
        for _ in range(1000):
            init = towers_facts(random_towers(blocks, self.rng), names)
            target = towers_facts(random_towers(blocks, self.rng), names)
            candidates = sorted(a for a in target if a[0] == names["on"])
            if not candidates:
                continue
            k = goal_facts or self.rng.randint(1, len(candidates))
            goal = set(self.rng.sample(candidates, min(k, len(candidates))))
            if not goal <= init:
                return Problem(
                    name,
                    self.domain.name,
                    {b: "object" for b in blocks},
                    frozenset(init),
                    frozenset(goal),
                    "<generated>",
                )
        if n == 1:
            raise WorldError("one block has no 'on' goal that is not already true: use 2 or more blocks")
        raise WorldError("could not generate a problem whose goal is not already true")

    def _walk(self, state: int, steps: int) -> int:
        task = self._seed_task
        for _ in range(steps):
            app = task.applicable(state)
            if not app:
                break
            state = task.apply(state, task.actions[self.rng.choice(app)])
        return state

    def _sample_walk(self, name: str, goal_facts: int | None, walk_length: int) -> Problem:
        task = self._seed_task
        static = task.static_mask
        for _ in range(1000):
            init = self._walk(task.init, self.rng.randint(0, walk_length))
            end = self._walk(init, self.rng.randint(1, walk_length))
            changed = sorted(task.state_facts(end & ~init & ~static))
            if not changed:
                continue
            k = goal_facts or self.rng.randint(1, len(changed))
            goal = frozenset(self.rng.sample(changed, min(k, len(changed))))
            return Problem(
                name, self.domain.name, dict(self.seed.objects), task.state_facts(init), goal, "<generated>"
            )
        raise WorldError(
            "random walks from the seed problem change no fact: no goal to generate", source=self.seed.source
        )


def problem_to_pddl(problem: Problem) -> str:
    objs = " ".join(problem.objects)
    init = "\n".join(format_atom(a) for a in sorted(problem.init))
    goal = "\n".join(format_atom(a) for a in sorted(problem.goal))
    return (
        f"(define (problem {problem.name})\n(:domain {problem.domain_name})\n(:objects {objs})\n(:init\n{init}\n)\n"
        f"(:goal\n(and\n{goal})\n)\n)\n"
    )
