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
from planner.search import PlanResult, SearchConfig, beam_search, rescored
from planner.shorten import company, read_steps, shorten

ACTORS = ("beam", "cem")

# Compute follows difficulty: a beam search gets the first share of the budget; when it spends that without a plan
# (a long plan: its beam cannot back out of the critic's plateaus) and the model has a relational critic, best-first
# search guided by that critic gets the rest. A beam that runs dry still ends the call at once, so unreachable goals
# stay quick to report. (These settings solve 101 of PlanBench's 110 hard problems given the whole budget.)
ESCALATE = {"strategy": "best-first", "beam_width": 4, "task_weight": 0.0, "critic_weight": 3.0}
BEAM_SHARE = 0.25
# SearchConfig.shorten: how many shorter plans are offered to the check, each avoiding what the last one's failed on
SHORTEN_TRIES = 3

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
            if self.search.shorten and len(r.path_facts) == len(r.actions) + 1:
                short = self._shorten(
                    world, worlds[k + 1 : k + 4], init_ids, goal_ids, r, guards, constraints, t0
                )
                if short is not None:  # the fresh ensembles agreed on it, as on any plan
                    short.expansions, short.generated = expansions, generated
                    short.seconds, short.seeds = time.perf_counter() - t0, draws[k]
                    short.verified_by *= e
                    return short
            _, problem, verified = self._verify(
                worlds[k + 1 : k + 4], init_ids, goal_ids, r.actions, constraints
            )
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

    def _shorten(
        self, world, judges, init_ids, goal_ids, r: PlanResult, guards, constraints, t0
    ) -> PlanResult | None:
        """The search's plan made shorter (`planner.shorten`), keeping the guardrails on the states the model's
        reading gives, that fresh ensembles (`judges`) agree runs and reaches the goal (`_verify`), as a result
        with its energies; None when no step could go, or none of `SHORTEN_TRIES` shorter plans was agreed on
        within the budget (the search's `time_limit`, counted from `t0`). The steps' preconditions are read by the
        search's ensemble (one identity draw alone misses 7-9% of them); a step the first judge finds it cannot run
        in its new place must avoid the facts new to it there in the next try."""
        sym = world.symbols
        ids = [sym.action_index[tuple(a)] for a in r.actions]
        if time.perf_counter() - t0 >= self.search.time_limit:
            return None
        began = time.perf_counter()
        steps = read_steps(world, ids, r.path_facts)
        took = time.perf_counter() - began

        def ok(steps, states) -> bool:
            acts = [sym.actions[s.action] for s in steps]
            atoms = [frozenset(sym.facts[f] for f in st) for st in states]
            return not any(c.first_break(acts, atoms) for c in constraints)

        for _ in range(SHORTEN_TRIES):
            # within the budget: a try starts only when the time left is more than the last one (first, the
            # reading) took
            if self.search.time_limit - (time.perf_counter() - t0) < took:
                return None
            began = time.perf_counter()
            short, path = shorten(steps, r.path_facts[0], goal_ids, ok)
            if len(short) >= len(ids):
                return None
            actions = [sym.actions[s.action] for s in short]
            at, problem, verified = self._verify(judges, init_ids, goal_ids, actions, constraints)
            if problem is None:
                out = rescored(
                    world, init_ids, goal_ids, [s.action for s in short], path, self.search, guards
                )
                out.verified_by = verified
                return out
            if at is None:
                return None
            bad = short[at - 1]
            avoid = company(sym, bad, path[at - 1], r.path_facts[bad.index])
            if not avoid:
                return None
            steps = [replace(s, avoid=s.avoid | avoid) if s.index == bad.index else s for s in steps]
            took = time.perf_counter() - began
        return None

    def _verify(self, worlds, init_ids, goal_ids, actions, constraints) -> tuple[int | None, str | None, int]:
        """A fresh ensemble must agree the plan runs and reaches the goal; if it does not, two more must both agree
        (2 of 3 fresh opinions). The first ensemble's problem (None when agreed) with the step it is at
        (`first_problem`), and how many ensembles agreed."""
        at, problem = self.first_problem(worlds[0], init_ids, goal_ids, actions, constraints)
        if problem is None:
            return None, None, 1
        opinions = [self.check(w, init_ids, goal_ids, actions, constraints) for w in worlds[1:3]]
        if len(opinions) == 2 and all(o is None for o in opinions):
            return None, None, 2
        return at, problem, 0

    @classmethod
    def check(
        cls,
        world: LatentWorld,
        init_ids: list[int],
        goal_ids: list[int],
        actions: list[tuple[str, ...]],
        constraints: list[Constraint] = (),
    ) -> str | None:
        """Rolls the plan out under one world (snapping to decoded facts): the first problem found, or None."""
        return cls.first_problem(world, init_ids, goal_ids, actions, constraints)[1]

    @staticmethod
    def first_problem(
        world: LatentWorld,
        init_ids: list[int],
        goal_ids: list[int],
        actions: list[tuple[str, ...]],
        constraints: list[Constraint] = (),
    ) -> tuple[int | None, str | None]:
        """`check`'s problem, with the step (from 1) that looks inapplicable, when that is the problem."""
        facts = list(init_ids)
        states = [frozenset(world.symbols.facts[i] for i in facts)]
        for i, a in enumerate(actions, start=1):
            latent = world.encode([facts])
            aid = world.symbols.action_index[tuple(a)]
            p_app = float(world.applicable_probs(latent)[0, aid])
            if p_app <= 0.5:
                return i, f"step {i} ({' '.join(a)}) looks inapplicable (p={p_app:.2f})"
            probs = world.fact_probs(world.step(latent, torch.tensor([aid])))
            states.append(world.facts_of(probs[0]))
            facts = (probs[0] > 0.5).nonzero().flatten().tolist()
        for c in constraints:
            where = c.first_break(list(actions), states)
            if where:
                return None, f"{where} breaks a guardrail: {c.describe()}"
        if not set(goal_ids) <= set(facts):
            return None, "the goal does not hold at the end"
        return None, None

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
