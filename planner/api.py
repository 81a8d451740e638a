"""`Planner`: the world model, the energies and the search behind one call. Takes plain symbols (objects, facts,
constraints), never the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.energies import ForbidActions, ForbidFact, Guardrail, RequireFact
from planner.latent import LatentWorld
from planner.search import PlanResult, SearchConfig, beam_search

Atom = tuple[str, ...]


@dataclass(frozen=True)
class Constraint:
    """A constraint the user stated, as plain data: kind is forbid_operator (target ("stack",)), forbid_object
    (("c",)), forbid_fact (("ontable", "a")) or require_fact (("on", "a", "b"))."""

    kind: str
    target: tuple[str, ...]
    text: str = ""

    def describe(self) -> str:
        return self.text or f"{self.kind.replace('_', ' ')} {' '.join(self.target)}"


class Planner:
    def __init__(self, model, search: SearchConfig | None = None, record: dict | None = None):
        self.model = model.eval()
        self.search = search or SearchConfig()
        self.record = record or {}

    @classmethod
    def load(cls, path: str | Path, search: SearchConfig | None = None) -> Planner:
        from planner.train import load_checkpoint

        model, record = load_checkpoint(Path(path))
        return cls(model, search, record)

    def guardrails(self, world: LatentWorld, constraints: list[Constraint]) -> list[Guardrail]:
        out: list[Guardrail] = []
        for c in constraints:
            if c.kind == "forbid_operator":
                ids = {i for i, a in enumerate(world.symbols.actions) if a[0] == c.target[0]}
                out.append(ForbidActions(f"no-{c.target[0]}", description=c.describe(), forbidden=ids))
            elif c.kind == "forbid_object":
                ids = {i for i, a in enumerate(world.symbols.actions) if c.target[0] in a[1:]}
                out.append(ForbidActions(f"untouched-{c.target[0]}", description=c.describe(), forbidden=ids))
            elif c.kind in ("forbid_fact", "require_fact"):
                idx = world.symbols.fact_index.get(tuple(c.target))
                if idx is None:
                    raise ValueError(f"constraint on an unknown fact: ({' '.join(c.target)})")
                cls = ForbidFact if c.kind == "forbid_fact" else RequireFact
                out.append(cls(f"{c.kind}:{' '.join(c.target)}", description=c.describe(), fact=idx))
            else:
                raise ValueError(f"unknown constraint kind {c.kind!r}")
        return out

    def plan(
        self,
        objects: list[str],
        init: set[Atom] | frozenset[Atom],
        goal: set[Atom] | frozenset[Atom],
        constraints: list[Constraint] = (),
        seed: int = 0,
    ) -> PlanResult:
        world = LatentWorld(self.model, list(objects), seed)
        unknown = [g for g in goal if g not in world.symbols.fact_index]
        if unknown:
            return PlanResult(
                "no_plan", reason="the goal names a fact that can never hold: (" + " ".join(unknown[0]) + ")"
            )
        guards = self.guardrails(world, list(constraints))
        return beam_search(world, world.fact_ids(init), world.fact_ids(goal), guards, self.search)
