"""Recognises the 4-operator blocksworld under any names (PlanBench's blocksworld, its mystery renaming): the
problem generator builds towers for it, and the reader completes the facts people leave unsaid."""

from __future__ import annotations

import itertools

from planner.worlds.pddl import Domain

# The 4-operator blocksworld that PlanBench uses, in canonical names.
_BW_PREDICATES = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
_BW_ACTIONS = {
    "pick-up": (
        1,
        {("clear", 0), ("ontable", 0), ("handempty",)},
        {("holding", 0)},
        {("clear", 0), ("ontable", 0), ("handempty",)},
    ),
    "put-down": (1, {("holding", 0)}, {("clear", 0), ("handempty",), ("ontable", 0)}, {("holding", 0)}),
    "stack": (
        2,
        {("clear", 1), ("holding", 0)},
        {("handempty",), ("clear", 0), ("on", 0, 1)},
        {("clear", 1), ("holding", 0)},
    ),
    "unstack": (
        2,
        {("on", 0, 1), ("clear", 0), ("handempty",)},
        {("holding", 0), ("clear", 1)},
        {("on", 0, 1), ("clear", 0), ("handempty",)},
    ),
}


def _positional(atoms, params) -> set[tuple]:
    return {(a[0], *(params.index(x) for x in a[1:])) for a in atoms}


def blocksworld_names(domain: Domain) -> dict[str, str] | None:
    """When the domain is the 4-operator blocksworld under some names, the map canonical name -> domain name."""
    if len(domain.predicates) != 5 or len(domain.actions) != 4:
        return None
    by_arity: dict[int, list[str]] = {}
    for p, n in domain.predicates.items():
        by_arity.setdefault(n, []).append(p)
    if sorted(len(v) for v in by_arity.values()) != [1, 1, 3] or set(by_arity) != {0, 1, 2}:
        return None
    unary_actions = [a for a, s in domain.actions.items() if len(s.parameters) == 1]
    binary_actions = [a for a, s in domain.actions.items() if len(s.parameters) == 2]
    if len(unary_actions) != 2 or len(binary_actions) != 2:
        return None
    schemas = {a: (s, list(s.parameters)) for a, s in domain.actions.items()}
    for unary in itertools.permutations(by_arity[1]):
        pmap = {
            "on": by_arity[2][0],
            "handempty": by_arity[0][0],
            "ontable": unary[0],
            "clear": unary[1],
            "holding": unary[2],
        }
        inv = {v: k for k, v in pmap.items()}
        for ua in itertools.permutations(unary_actions):
            for ba in itertools.permutations(binary_actions):
                amap = {"pick-up": ua[0], "put-down": ua[1], "stack": ba[0], "unstack": ba[1]}
                ok = True
                for canon, (_, pre, add, dele) in _BW_ACTIONS.items():
                    s, params = schemas[amap[canon]]
                    renamed = tuple(
                        {(inv[a[0]], *a[1:]) for a in _positional(atoms, params)}
                        for atoms in (s.precondition, s.add, s.delete)
                    )
                    if renamed != (pre, add, dele):
                        ok = False
                        break
                if ok:
                    return {**pmap, **amap}
    return None
