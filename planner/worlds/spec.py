"""Random problems for a world described by a short declarative spec (YAML): its object groups with their counts and
static facts, where each movable object may be, and which of them a goal moves. Logistics is one such spec
(`ami_agent/worlds/logistics.problems.yaml`); a new world of the same shape needs a spec, not code.

A problem is made in two steps: the *skeleton* (the objects and the static facts: cities, their locations and
airports, the vehicles' kinds) and the *state* on it (each placed object at one of the places its `where` allows;
a goal placing some of them again, elsewhere). Problems that share a skeleton share their candidate facts and
actions, so a training batch draws one skeleton and many states on it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from planner.worlds.errors import WorldError
from planner.worlds.pddl import Atom, Domain, Problem
from planner.worlds.strips import Task

_ATOM = re.compile(r"^\(\s*([^\s()]+)((?:\s+[^\s()]+)*)\s*\)$")


def _atom(text: str, where: str) -> Atom:
    m = _ATOM.match(text.strip())
    if not m:
        raise WorldError(f"not a fact: {text!r} (write it as in PDDL: (in-city ? ?parent))", source=where)
    return (m.group(1).lower(), *m.group(2).split())


def _range(v, where: str) -> tuple[int, int]:
    lo, hi = (
        (v, v)
        if isinstance(v, int)
        else (tuple(v) if isinstance(v, (list, tuple)) and len(v) == 2 else (None, None))
    )
    if not isinstance(lo, int) or not isinstance(hi, int) or lo < 0 or hi < lo:
        raise WorldError(f"a count is a number or [low, high] with 0 <= low <= high, got {v!r}", source=where)
    return lo, hi


def parse_counts(text) -> dict[str, int | list[int]]:
    """ "city=4,location=3-4" (or a list of "group=N" / "group=LOW-HIGH" items) -> {"city": 4, "location": [3, 4]}"""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: dict[str, int | list[int]] = {}
    for part in items:
        key, _, value = part.partition("=")
        lo, _, hi = value.strip().partition("-")
        if not key.strip() or not lo.isdigit() or (hi and not hi.isdigit()):
            raise WorldError(f"counts: expected GROUP=N or GROUP=LOW-HIGH, comma-separated; got {part!r}")
        out[key.strip()] = [int(lo), int(hi)] if hi else int(lo)
    return out


@dataclass(frozen=True)
class Group:
    name: str
    pattern: (
        str  # object names: {i} index under its parent, {n} index in the group, {parent} the parent's index
    )
    count: tuple[int, int]  # per parent (or in all when no parent)
    per: str | None
    facts: tuple[Atom, ...]  # "?" is the object, "?parent" its parent
    first: tuple[Atom, ...]  # facts of the first object under each parent only


@dataclass(frozen=True)
class Placement:
    fact: Atom  # "?" the object, "?x" the place
    where: tuple[Atom, ...]  # static facts the place must satisfy ("?parent": the object's parent)

    @property
    def var(self) -> str:
        """The place's variable in `fact` ("?x")."""
        return next(x for x in self.fact[1:] if x.startswith("?") and x != "?")


@dataclass(frozen=True)
class Skeleton:
    objects: dict[str, str]  # name -> group, in problem order
    parent: dict[str, str]  # name -> its parent object
    static: frozenset[Atom]
    counts: dict[str, int]
    places: dict[str, list[str]]  # placed object -> where it may be (its group's `where`, read once)


class WorldSpec:
    def __init__(self, data: dict, source: str = "<spec>"):
        self.source = source
        if not isinstance(data, dict) or "objects" not in data:
            raise WorldError(
                "a world spec needs 'objects' (see ami_agent/worlds/logistics.problems.yaml)", source=source
            )
        self.groups: list[Group] = []
        for name, g in data["objects"].items():
            where = f"{source}: objects.{name}"
            per = g.get("per")
            if per is not None and per not in {x.name for x in self.groups}:
                raise WorldError(f"'per: {per}' names no group listed before it", source=where)
            self.groups.append(
                Group(
                    name,
                    str(g.get("name", name[0] + "{n}")),
                    _range(g.get("count", 1), where),
                    per,
                    tuple(_atom(f, where) for f in g.get("facts", ())),
                    tuple(_atom(f, where) for f in g.get("first", ())),
                )
            )
        names = {g.name for g in self.groups}
        self.place: dict[str, Placement] = {}
        for name, p in (data.get("place") or {}).items():
            where = f"{source}: place.{name}"
            if name not in names:
                raise WorldError(f"'{name}' is not a group of 'objects'", source=where)
            self.place[name] = Placement(
                _atom(p["fact"], where), tuple(_atom(w, where) for w in p.get("where", ()))
            )
        self.goal: tuple[str, ...] = tuple(data.get("goal") or ())
        for g in self.goal:
            if g not in self.place:
                raise WorldError(f"goal group '{g}' has no 'place' entry", source=f"{source}: goal")
        self.unsolvable = {
            k: _range(v, f"{source}: unsolvable.{k}") for k, v in (data.get("unsolvable") or {}).items()
        }

    @classmethod
    def load(cls, path: str | Path) -> WorldSpec:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise WorldError(f"cannot read the world spec: {e}", source=str(p)) from None
        return cls(data, str(p))

    @staticmethod
    def beside(domain: Domain) -> WorldSpec | None:
        """The spec next to a domain file: `logistics.pddl` -> `logistics.problems.yaml`."""
        if not domain.source or domain.source.startswith("<"):
            return None
        p = Path(domain.source)
        cand = p.with_name(p.stem + ".problems.yaml")
        return WorldSpec.load(cand) if cand.exists() else None

    # --- sizes
    def count_ranges(
        self, counts: dict | None = None, unsolvable: bool = False
    ) -> dict[str, tuple[int, int]]:
        out = {g.name: g.count for g in self.groups}
        if unsolvable:
            out.update(self.unsolvable)
        for k, v in (counts or {}).items():
            if k not in out:
                raise WorldError(
                    f"no group '{k}' in the world spec (groups: {', '.join(out)})", source=self.source
                )
            out[k] = _range(v, f"counts.{k}")
        return out

    def skeleton(
        self,
        rng: random.Random,
        n_objects: int | None = None,
        counts: dict | None = None,
        unsolvable: bool = False,
    ) -> Skeleton:
        ranges = self.count_ranges(counts, unsolvable)
        for _ in range(5000):
            sk = self._skeleton(rng, ranges)
            if (n_objects is None or len(sk.objects) == n_objects) and self._movable(sk):
                return sk
        raise WorldError(
            f"this world's spec makes no problem of {n_objects} objects (counts {ranges})",
            source=self.source,
            hint="Choose an object count the spec's ranges allow",
        )

    def _movable(self, sk: Skeleton) -> bool:
        """Some object of the goal groups has two places to be (else no goal can be drawn on it)."""
        return not self.goal or any(
            g in self.goal and len(self.places(sk, o)) > 1 for o, g in sk.objects.items()
        )

    def _skeleton(self, rng: random.Random, ranges) -> Skeleton:
        objects: dict[str, str] = {}
        parent: dict[str, str] = {}
        members: dict[str, list[str]] = {}
        static: set[Atom] = set()
        for g in self.groups:
            lo, hi = ranges[g.name]
            parents = members[g.per] if g.per else [None]
            made = members.setdefault(g.name, [])
            for pi, par in enumerate(parents):
                for i in range(rng.randint(lo, hi)):
                    name = g.pattern.format(i=i, n=len(made), parent=pi)
                    made.append(name)
                    objects[name] = g.name
                    sub = {"?": name}
                    if par is not None:
                        parent[name] = par
                        sub["?parent"] = par
                    for f in g.facts + (g.first if i == 0 else ()):
                        static.add((f[0], *(sub.get(x, x) for x in f[1:])))
        counts = {g: len(v) for g, v in members.items()}
        places = {}
        for obj, group in objects.items():
            if group in self.place:
                p = self.place[group]
                places[obj] = [
                    cand
                    for cand in objects
                    if all(
                        (w[0], *({p.var: cand, "?parent": parent.get(obj, "")}.get(x, x) for x in w[1:]))
                        in static
                        for w in p.where
                    )
                ]
        return Skeleton(objects, parent, frozenset(static), counts, places)

    # --- states
    def places(self, sk: Skeleton, obj: str) -> list[str]:
        return sk.places[obj]

    def universe(self, domain: Domain, sk: Skeleton) -> Task:
        """A task grounded from every placement at once (the static facts, each placed object at each of its
        places): every problem on the skeleton is this task rebased (`Task.rebased`), with no grounding of its
        own."""
        init = set(sk.static) | {
            self._placed(sk, o, p)
            for o in sk.objects
            if sk.objects[o] in self.place
            for p in self.places(sk, o)
        }
        return Task(
            domain,
            Problem(
                "universe",
                domain.name,
                {o: "object" for o in sk.objects},
                frozenset(init),
                frozenset(),
                "<generated>",
            ),
        )

    def _placed(self, sk: Skeleton, obj: str, place: str) -> Atom:
        p = self.place[sk.objects[obj]]
        return (p.fact[0], *({"?": obj, p.var: place}.get(x, x) for x in p.fact[1:]))

    def state(self, sk: Skeleton, rng: random.Random) -> dict[str, str]:
        out = {}
        for obj, group in sk.objects.items():
            if group in self.place:
                options = self.places(sk, obj)
                if not options:
                    raise WorldError(f"'{obj}' ({group}) has no place its 'where' allows", source=self.source)
                out[obj] = rng.choice(options)
        return out

    def problem(
        self,
        domain: Domain,
        sk: Skeleton,
        rng: random.Random,
        name: str = "generated",
        goal_facts: int | None = None,
    ) -> Problem:
        """A problem on the skeleton: everything placed at random, a goal placing 1..all (or `goal_facts`) of the
        goal groups' objects elsewhere."""
        at = self.state(sk, rng)
        movable = [o for o in at if sk.objects[o] in self.goal]
        moved = [o for o in movable if len(self.places(sk, o)) > 1]
        if not moved:
            raise WorldError("no object of the goal groups has a second place to go", source=self.source)
        k = min(goal_facts or rng.randint(1, len(moved)), len(moved))
        goal = set()
        for o in rng.sample(moved, k):
            goal.add(self._placed(sk, o, rng.choice([p for p in self.places(sk, o) if p != at[o]])))
        init = set(sk.static) | {self._placed(sk, o, p) for o, p in at.items()}
        return Problem(
            name,
            domain.name,
            {o: "object" for o in sk.objects},
            frozenset(init),
            frozenset(goal),
            "<generated>",
        )

    def sample(
        self,
        domain: Domain,
        rng: random.Random,
        n_objects: int | None = None,
        counts: dict | None = None,
        name: str = "generated",
        goal_facts: int | None = None,
        unsolvable: bool = False,
    ) -> Problem:
        """A problem whose goal some plan reaches (or, with `unsolvable`, one whose goal no plan reaches: the
        relaxed reachability of its goal fails, drawn with the spec's `unsolvable` counts)."""
        for _ in range(2000):
            sk = self.skeleton(rng, n_objects, counts, unsolvable)
            try:
                p = self.problem(domain, sk, rng, name, goal_facts)
            except WorldError:
                continue  # nothing on this skeleton can move: draw another
            if Task(domain, p).goal_reachable != unsolvable:
                return p
        what = "unsolvable" if unsolvable else "solvable"
        raise WorldError(f"2000 draws made no {what} problem with these counts", source=self.source)
