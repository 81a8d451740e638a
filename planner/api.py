"""`Planner`: the world model, the energies and the search behind one call. Takes plain symbols (objects, facts,
constraints), never the simulator."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from planner.cem import CEMConfig, cem_search
from planner.checkpoint import load_checkpoint
from planner.constraints import Constraint
from planner.encoding import ProblemSymbols
from planner.energies import ForbidActions, ForbidFact, Guardrail, RequireFact
from planner.latent import EnsembleWorld, LatentWorld
from planner.memory import release_freed_memory
from planner.search import PlanResult, SearchConfig, beam_search

ACTORS = ("beam", "cem")

# Compute follows difficulty: a beam search gets the first share of the budget; when it spends that without a plan
# (a long plan: its beam cannot back out of the critic's plateaus) and the model has a relational critic, best-first
# search guided by that critic gets the rest. A beam that runs dry still ends the call at once, so unreachable goals
# stay quick to report. (These settings solve 101 of PlanBench's 110 hard problems given the whole budget.)
ESCALATE = {"strategy": "best-first", "beam_width": 4, "task_weight": 0.0, "critic_weight": 3.0}
BEAM_SHARE = 0.25

Atom = tuple[str, ...]


class Planner:
    """Search in latent space with an ensemble of identity draws, then check the plan under another ensemble.

    Object identities are arbitrary, so each draw gives a slightly different model of the same world: the search
    averages `ensemble` draws' read-outs, and a plan is returned only when rolling it out under a fresh ensemble also
    says every step can run, no guardrail breaks and the goal holds. A rejected plan sends the search to the next
    ensemble (`attempts` in all). No plan is ever returned unchecked; the simulator is never consulted.
    """

    def __init__(
        self,
        model,
        search: SearchConfig | None = None,
        record: dict | None = None,
        ensemble: int = 5,
        attempts: int = 2,
        actor: str = "beam",
        cem: CEMConfig | None = None,
        escalate: bool = True,
    ):
        """actor: "beam" (best-first beam search, planner/search.py) or "cem" (the cross-entropy method over
        action sequences, planner/cem.py); both are checked the same way. escalate: a beam search that spends
        `BEAM_SHARE` of the budget hands the rest to best-first search (`ESCALATE`), for a model with a
        relational critic."""
        if actor not in ACTORS:
            raise ValueError(f"actor must be one of {', '.join(ACTORS)}, got {actor!r}")
        self.model = model.eval()
        self.search = search or SearchConfig()
        self.record = record or {}
        self.ensemble = ensemble
        self.attempts = attempts
        self.actor = actor
        self.cem = cem or CEMConfig()
        self.escalate = (
            escalate and actor == "beam" and self.search.strategy == "beam" and bool(model.relational)
        )

    @classmethod
    def load(cls, path: str | Path, search: SearchConfig | dict | None = None, **kw) -> Planner:
        """The planner of a checkpoint. It searches with the world's settings from its recipe (the record's
        `config.search`) over SearchConfig's defaults; `search`: a dict of settings to change on top of those (a
        budget, say), or a whole SearchConfig that replaces them."""
        model, record = load_checkpoint(Path(path))
        if not isinstance(search, SearchConfig):
            world = (record.get("config") or {}).get("search") or {}
            search = SearchConfig(**{**world, **(search or {})})
        return cls(model, search, record, **kw)

    def _world(self, objects, seeds, init, symbols: ProblemSymbols | None = None) -> EnsembleWorld:
        """The model bound to one problem under identity draws `seeds`, reading facts the world's way."""
        return EnsembleWorld(
            self.model,
            list(objects),
            list(seeds),
            init,
            self.search.ensemble_readout,
            self.search.fact_threshold,
            symbols,
        )

    def guardrails(self, world: LatentWorld, constraints: list[Constraint]) -> list[Guardrail]:
        out: list[Guardrail] = []
        for c in constraints:
            if c.kind == "forbid_operator":
                ids = {i for i, a in enumerate(world.symbols.actions) if c.forbids(a)}
                out.append(ForbidActions(f"no-{'-'.join(c.target)}", description=c.describe(), forbidden=ids))
            elif c.kind == "forbid_object":
                ids = {i for i, a in enumerate(world.symbols.actions) if c.target[0] in a[1:]}
                out.append(ForbidActions(f"untouched-{c.target[0]}", description=c.describe(), forbidden=ids))
            elif c.kind in ("forbid_fact", "require_fact"):
                idx = world.symbols.fact_index.get(tuple(c.target))
                if idx is None:
                    raise ValueError(f"constraint on an unknown fact: ({' '.join(c.target)})")
                cls = ForbidFact if c.kind == "forbid_fact" else RequireFact
                out.append(cls(f"{c.kind}:{' '.join(c.target)}", description=c.describe(), fact=idx))
        return out

    def plan(
        self,
        objects: list[str],
        init: set[Atom] | frozenset[Atom],
        goal: set[Atom] | frozenset[Atom],
        constraints: list[Constraint] = (),
        seed: int = 0,
    ) -> PlanResult:
        try:
            return self._plan(objects, init, goal, constraints, seed)
        finally:
            release_freed_memory()  # what the search freed goes back to the OS, not to the next search's peak

    def _plan(self, objects, init, goal, constraints, seed) -> PlanResult:
        t0 = time.perf_counter()
        e = self.ensemble
        draws = [list(range(seed + k * e, seed + (k + 1) * e)) for k in range(self.attempts + 3)]
        symbols = ProblemSymbols(self.model.vocab, list(objects), init)  # grounded once for every draw
        worlds = [self._world(objects, d, init, symbols) for d in draws]
        constraints = list(constraints)
        unknown = [g for g in goal if g not in worlds[0].symbols.fact_index]
        if unknown:
            return PlanResult(
                "no_plan", reason="the goal names a fact that can never hold: (" + " ".join(unknown[0]) + ")"
            )
        init_ids, goal_ids = worlds[0].fact_ids(init), worlds[0].fact_ids(goal)
        expansions = generated = rejected = 0
        last: PlanResult | None = None
        for k in range(self.attempts):
            world = worlds[k]
            guards = self.guardrails(world, list(constraints))
            # the budget (seconds and expansions) is shared by every identity draw of this call
            remaining = self.search.time_limit - (time.perf_counter() - t0)
            left = self.search.max_expansions - expansions
            if remaining <= 0 or left <= 0:
                break
            if self.actor == "cem":
                cfg = replace(self.cem, time_limit=remaining, max_depth=self.search.max_depth, seed=seed + k)
                r = cem_search(world, init_ids, goal_ids, guards, cfg)
            elif self.escalate:
                share = replace(
                    self.search,
                    time_limit=remaining * BEAM_SHARE,
                    max_expansions=max(1, int(left * BEAM_SHARE)),
                )
                r = beam_search(world, init_ids, goal_ids, guards, share)
                remaining = self.search.time_limit - (time.perf_counter() - t0)
                if r.status != "solved" and r.budget_spent and remaining > 0 and left > r.expansions:
                    cfg = replace(
                        self.search, **ESCALATE, time_limit=remaining, max_expansions=left - r.expansions
                    )
                    beam = r
                    r = beam_search(world, init_ids, goal_ids, guards, cfg)
                    r.expansions += beam.expansions
                    r.generated += beam.generated
                    r.escalated, r.escalated_by = True, beam.spent
                    if r.status != "solved":
                        r.reason = f"a beam search spent its share of the budget, then best-first: {r.reason}"
            else:
                cfg = replace(self.search, time_limit=remaining, max_expansions=left)
                r = beam_search(world, init_ids, goal_ids, guards, cfg)
            expansions += r.expansions
            generated += r.generated
            last = r
            if r.status != "solved":
                if not rejected or r.budget_spent:
                    break  # another identity draw rarely finds what a whole search did not: report this one
                continue  # this draw's model missed what an earlier one found: ask the next draw
            # a fresh ensemble must agree; if it does not, two more must both agree (2 of 3 fresh opinions)
            problem = self.check(worlds[k + 1], init_ids, goal_ids, r.actions, constraints)
            verified = 1
            if problem is not None:
                opinions = [
                    self.check(w, init_ids, goal_ids, r.actions, constraints) for w in worlds[k + 2 : k + 4]
                ]
                if len(opinions) == 2 and all(o is None for o in opinions):
                    problem, verified = None, 2
            if problem is None:
                r.expansions, r.generated, r.seconds = expansions, generated, time.perf_counter() - t0
                r.verified_by = verified * e
                r.seeds = draws[k]
                return r
            rejected += 1
            last = PlanResult("no_plan", reason=f"the plan found failed the model's own check: {problem}")
        out = last or PlanResult("no_plan", reason="no search budget left", budget_spent=True)
        if rejected and out.status != "solved":
            out.reason = f"{rejected} plan(s) rejected by the model's own check; last: {out.reason}"
        out.expansions, out.generated, out.seconds = expansions, generated, time.perf_counter() - t0
        return out

    @staticmethod
    def check(
        world: LatentWorld,
        init_ids: list[int],
        goal_ids: list[int],
        actions: list[tuple[str, ...]],
        constraints: list[Constraint] = (),
    ) -> str | None:
        """Rolls the plan out under one world (snapping to decoded facts): the first problem found, or None."""
        facts = list(init_ids)
        states = [frozenset(world.symbols.facts[i] for i in facts)]
        for i, a in enumerate(actions, start=1):
            latent = world.encode([facts])
            aid = world.symbols.action_index[tuple(a)]
            p_app = float(world.applicable_probs(latent)[0, aid])
            if p_app <= 0.5:
                return f"step {i} ({' '.join(a)}) looks inapplicable (p={p_app:.2f})"
            probs = world.fact_probs(world.step(latent, torch.tensor([aid])))
            states.append(world.facts_of(probs[0]))
            facts = (probs[0] > 0.5).nonzero().flatten().tolist()
        for c in constraints:
            where = c.first_break(list(actions), states)
            if where:
                return f"{where} breaks a guardrail: {c.describe()}"
        if not set(goal_ids) <= set(facts):
            return "the goal does not hold at the end"
        return None

    def latent_plan(self, objects: list[str], init, actions: list[tuple[str, ...]], seeds: list[int]):
        """The latent trajectory (T+1, E, N+1, D) and identity vectors (E, N, D) of a plan the search returned,
        computed again from plain data: the same identity draws (`PlanResult.seeds`) roll the same actions out
        from the same start, as the search's result did. What the decoder reads survives as facts and labels."""
        world = self._world(objects, seeds, init)
        root = world.encode([world.fact_ids(init)])
        ids = [world.symbols.action_index[tuple(a)] for a in actions]
        return world.unroll(root, ids), world.ids

    def energy_trace(
        self, objects: list[str], init, goal, actions: list[tuple[str, ...]], seeds: list[int]
    ) -> dict[str, list[float]]:
        """The energies along a plan the search returned, from the same latent trajectory (`latent_plan`): for the
        state before the plan and after each step, the critic's steps to go and the task energy (-sum log p(goal
        fact): 0 when the model is sure the goal holds); for each step, its feasibility energy (-log p(the action
        could run))."""
        world = self._world(objects, seeds, init)
        ids = [world.symbols.action_index[tuple(a)] for a in actions]
        trajectory = world.unroll(world.encode([world.fact_ids(init)]), ids)
        probs = world.fact_probs(trajectory)
        goal_ids = world.fact_ids(goal)
        task = -torch.log(probs[:, goal_ids].clamp(min=1e-6)).sum(-1)
        critic = world.steps_to_go(trajectory, goal_ids, probs)
        feasible = [
            float(-torch.log(world.applicable_probs(trajectory[t : t + 1])[0, a].clamp(min=1e-6)))
            for t, a in enumerate(ids)
        ]
        return {
            "critic": [round(float(x), 3) for x in critic],
            "task": [round(float(x), 4) for x in task],
            "feasibility": [round(x, 4) for x in feasible],
        }
