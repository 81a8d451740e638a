"""Grounded STRIPS tasks: ground actions by relaxed reachability, states as bitmasks, apply and goal test.

This is the symbolic simulator. It makes training data and judges results; the agent never plans with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

from planner.worlds.errors import WorldError
from planner.worlds.pddl import ActionSchema, Atom, Domain, Problem, format_atom


@dataclass(frozen=True)
class GroundAction:
    name: str
    args: tuple[str, ...]
    pre: int  # bitmask over the task's facts
    add: int
    delete: int

    @property
    def label(self) -> str:
        return format_atom((self.name, *self.args))


def _subtypes(domain: Domain) -> dict[str, set[str]]:
    """type -> the set of types that are it or below it."""
    below: dict[str, set[str]] = {"object": {"object"}}
    for t in domain.types:
        below.setdefault(t, set()).add(t)
    for t in list(domain.types):
        parent, seen = domain.types.get(t), {t}
        while parent and parent not in seen:
            below.setdefault(parent, {parent}).add(t)
            seen.add(parent)
            parent = domain.types.get(parent)
        below["object"].add(t)
    return below


def objects_by_param(schema: ActionSchema, objects: dict[str, str], domain: Domain) -> list[list[str]]:
    below = _subtypes(domain)
    out = []
    for t in schema.parameter_types:
        ok = below.get(t, {t})
        out.append([o for o, ot in objects.items() if t == "object" or ot in ok])
    return out


def instantiate(schema: ActionSchema, args: tuple[str, ...]) -> tuple[list[Atom], list[Atom], list[Atom]]:
    binding = dict(zip(schema.parameters, args))

    def sub(atom: Atom) -> Atom:
        return (atom[0], *(binding.get(a, a) for a in atom[1:]))

    return (
        [sub(a) for a in schema.precondition],
        [sub(a) for a in schema.add],
        [sub(a) for a in schema.delete],
    )


def _bindings(schema: ActionSchema, reach: dict[str, set[tuple]], candidates: list[list[str]]):
    """All parameter bindings whose preconditions are in the (relaxed) reachable facts."""
    params = schema.parameters
    pre = list(schema.precondition)

    def rec(binding: dict[str, str], remaining: list[Atom]):
        if not remaining:
            free = [i for i, p in enumerate(params) if p not in binding]
            if not free:
                yield tuple(binding[p] for p in params)
                return
            i = free[0]
            for o in candidates[i]:
                binding[params[i]] = o
                yield from rec(binding, remaining)
                del binding[params[i]]
            return
        # the most-bound atom next: it has the fewest matches
        best = max(
            range(len(remaining)),
            key=lambda k: sum(1 for a in remaining[k][1:] if a in binding or not a.startswith("?")),
        )
        atom = remaining[best]
        rest = remaining[:best] + remaining[best + 1 :]
        for fact in reach.get(atom[0], ()):
            newly = []
            ok = True
            for var, val in zip(atom[1:], fact):
                if var.startswith("?"):
                    bound = binding.get(var)
                    if bound is None:
                        if val not in candidates[params.index(var)]:
                            ok = False
                            break
                        binding[var] = val
                        newly.append(var)
                    elif bound != val:
                        ok = False
                        break
                elif var != val:
                    ok = False
                    break
            if ok:
                yield from rec(binding, rest)
            for v in newly:
                del binding[v]

    yield from rec({}, pre)


class Task:
    """A grounded problem: facts are indexed, states are ints whose bit i says fact i holds."""

    def __init__(self, domain: Domain, problem: Problem):
        self.domain = domain
        self.problem = problem
        objects = dict(problem.objects)
        for c, t in domain.constants.items():
            objects.setdefault(c, t)
        self.objects = objects
        reach: dict[str, set[tuple]] = {}
        for atom in problem.init:
            reach.setdefault(atom[0], set()).add(atom[1:])
        candidates = {name: objects_by_param(s, objects, domain) for name, s in domain.actions.items()}
        grounded: dict[tuple[str, tuple[str, ...]], tuple[list[Atom], list[Atom], list[Atom]]] = {}
        changed = True
        while changed:
            changed = False
            for name, schema in domain.actions.items():
                for args in list(_bindings(schema, reach, candidates[name])):
                    if (name, args) in grounded:
                        continue
                    pre, add, dele = instantiate(schema, args)
                    grounded[(name, args)] = (pre, add, dele)
                    for a in add:
                        s = reach.setdefault(a[0], set())
                        if a[1:] not in s:
                            s.add(a[1:])
                            changed = True
        facts = sorted({(p, *args) for p, argset in reach.items() for args in argset} | set(problem.goal))
        self.facts: list[Atom] = facts
        self.fact_index: dict[Atom, int] = {f: i for i, f in enumerate(facts)}
        self.actions: list[GroundAction] = []
        for (name, args), (pre, add, dele) in sorted(grounded.items()):
            self.actions.append(
                GroundAction(
                    name,
                    args,
                    self.mask(pre),
                    self.mask(add),
                    self.mask([d for d in dele if d in self.fact_index]),
                )
            )
        self.action_index = {(a.name, a.args): i for i, a in enumerate(self.actions)}
        self.init = self.mask(problem.init)
        self.goal = self.mask(problem.goal)
        static_preds = domain.static_predicates
        self.static_mask = self.mask([f for f in facts if f[0] in static_preds])

    def rebased(self, problem: Problem) -> Task:
        """This grounding with another problem's initial state and goal (its objects the same, its facts among
        this task's): no new grounding. Correct when this task was grounded from a state that includes the other's
        (relaxed reachability only grows with the initial facts), as a spec world's universe of placements does."""
        t = copy.copy(self)
        t.problem = problem
        t.init = self.mask(problem.init)
        t.goal = self.mask(problem.goal)
        t.__dict__.pop("goal_reachable", None)
        return t

    def mask(self, atoms) -> int:
        m = 0
        for a in atoms:
            m |= 1 << self.fact_index[a]
        return m

    def state_facts(self, state: int) -> frozenset[Atom]:
        out = []
        i = 0
        while state:
            if state & 1:
                out.append(self.facts[i])
            state >>= 1
            i += 1
        return frozenset(out)

    def state_from_facts(self, atoms) -> int:
        unknown = [a for a in atoms if a not in self.fact_index]
        if unknown:
            raise WorldError(
                f"fact {format_atom(unknown[0])} can never hold in this problem", source=self.problem.source
            )
        return self.mask(atoms)

    def applicable(self, state: int) -> list[int]:
        return [i for i, a in enumerate(self.actions) if state & a.pre == a.pre]

    @staticmethod
    def apply(state: int, action: GroundAction) -> int:
        return (state & ~action.delete) | action.add

    def is_goal(self, state: int) -> bool:
        return state & self.goal == self.goal

    @cached_property
    def goal_reachable(self) -> bool:
        """False when some goal fact is not even relaxed-reachable (then no plan exists)."""
        reached = self.init
        changed = True
        while changed:
            changed = False
            for a in self.actions:
                if reached & a.pre == a.pre and (reached | a.add) != reached:
                    reached |= a.add
                    changed = True
        return reached & self.goal == self.goal

    def find_action(self, name: str, args: tuple[str, ...]) -> GroundAction | None:
        i = self.action_index.get((name, args))
        return None if i is None else self.actions[i]
