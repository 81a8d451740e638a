"""The world model bound to one problem: what the search sees. Encode facts, step latents with actions, read facts,
applicability and steps-to-go off latents. Nothing here knows preconditions or effects: only the learned model."""

from __future__ import annotations

import torch

from planner.encoding import Atom, ProblemSymbols
from planner.jepa import WorldModel


def fact_batch(symbols: ProblemSymbols, states: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """B lists of true-fact indices -> padded fact rows (B, Fmax, 1+A) and the padding mask (B, Fmax)."""
    fmax = max(1, max(len(s) for s in states))
    rows = torch.zeros(len(states), fmax, symbols.fact_rows.shape[1], dtype=torch.long)
    pad = torch.ones(len(states), fmax, dtype=torch.bool)
    for i, s in enumerate(states):
        rows[i, : len(s)] = symbols.fact_rows[s]
        pad[i, : len(s)] = False
    return rows, pad


def _chunked(fn=None, *, readout: str | None = None):
    """Runs a batched method in slices and concatenates: peak memory stays flat however many candidates a search
    step makes. A slice holds at most `self.max_rows` model rows (states x draws); for a read-out (`readout`: the
    symbol table it scores, "fact_rows" or "action_rows") at most `self.max_cells` (model row, symbol) pairs, since
    its work grows with the symbols too: a 15-object problem has hundreds of ground facts and actions."""

    def decorate(fn):
        def wrapper(self, x, *args):
            e = getattr(self, "e", 1)
            if readout is None:
                step = max(1, self.max_rows // e)
            else:
                step = max(1, self.max_cells // (e * len(getattr(self.symbols, readout))))
            n = x.shape[0] if isinstance(x, torch.Tensor) else len(x)
            if n <= step:
                return fn(self, x, *args)
            parts = [
                fn(
                    self,
                    x[i : i + step],
                    *(a[i : i + step] if isinstance(a, torch.Tensor) else a for a in args),
                )
                for i in range(0, n, step)
            ]
            return torch.cat(parts, 0)

        wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
        return wrapper

    return decorate(fn) if fn is not None else decorate


def applicable_of(world, latents: torch.Tensor, actions: list[int]) -> torch.Tensor:
    """p(applicable) of a few `actions` in each state (B, len(actions)), as `applicable_probs` reads them (the
    draws' probabilities averaged for an ensemble), from those actions' rows alone: a plan's own steps cost a
    fraction of reading every candidate action."""
    rows = world.symbols.action_rows[actions]
    e = getattr(world, "e", None)
    with torch.no_grad():
        if e is None:
            return torch.sigmoid(world.model.applicability(latents, rows))
        logits = world.model.applicability(latents.flatten(0, 1), rows)
        return torch.sigmoid(logits).view(latents.shape[0], e, -1).mean(1)


class LatentWorld:
    max_rows = 2048
    max_cells = 2048 * 64

    def __init__(
        self,
        model: WorldModel,
        objects: list[str],
        seed: int = 0,
        init=None,
        symbols: ProblemSymbols | None = None,
    ):
        """`init`: the problem's facts, read for its static ones when the world's candidates follow them;
        `symbols`: the problem's candidate symbols when the caller has them (they depend on the objects and the
        static facts only, and grounding a large typed problem takes a fraction of a second)."""
        if len(objects) > model.cfg.identity_slots:
            raise ValueError(
                f"{len(objects)} objects, but the model has {model.cfg.identity_slots} identity slots"
            )
        self.model = model.eval()
        self.symbols = symbols or ProblemSymbols(model.vocab, objects, init)
        g = torch.Generator().manual_seed(seed)
        slots = torch.randperm(model.cfg.identity_slots, generator=g)[: len(objects)]
        with torch.no_grad():
            self.ids = model.object_ids(slots.unsqueeze(0))  # (1, N, D)

    @property
    def n_actions(self) -> int:
        return len(self.symbols.actions)

    def fact_ids(self, atoms) -> list[int]:
        """The candidate-fact indices of atoms, sorted: the same latent in every process (a set's order is not)."""
        return sorted(self.symbols.fact_index[a] for a in atoms if a in self.symbols.fact_index)

    @torch.no_grad()
    @_chunked
    def encode(self, states: list[list[int]]) -> torch.Tensor:
        # states: B lists of true-fact indices -> (B, N+1, D)
        b = len(states)
        rows, pad = fact_batch(self.symbols, states)
        return self.model.encode(rows, pad, self.ids.expand(b, -1, -1))

    @torch.no_grad()
    @_chunked
    def step(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # latents: (B, N+1, D); actions: (B,) candidate-action indices -> (B, N+1, D)
        rows = self.symbols.action_rows[actions]
        return self.model.predict(latents, rows, self.ids.expand(latents.shape[0], -1, -1))

    @torch.no_grad()
    def unroll(self, latent: torch.Tensor, actions: list[int]) -> torch.Tensor:
        """The latent trajectory of an action sequence from one latent state: (T+1, N+1, D)."""
        out = [latent]
        for a in actions:
            out.append(self.step(out[-1], torch.tensor([a])))
        return torch.cat(out, 0)

    @torch.no_grad()
    @_chunked(readout="fact_rows")
    def fact_probs(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.fact_probe(latents, self.symbols.fact_rows))

    @torch.no_grad()
    @_chunked(readout="action_rows")
    def applicable_probs(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.applicability(latents, self.symbols.action_rows))

    @torch.no_grad()
    @_chunked
    def steps_to_go(
        self, latents: torch.Tensor, goal: list[int], probs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The critic's estimate of the steps from each latent state to the goal. `probs` (B, F): the states' fact
        probabilities when the caller has them already (a search holds its children's); the relational critic
        reads only those, so they are not read off the latents a second time."""
        b = latents.shape[0]
        rows = self.symbols.fact_rows[goal].unsqueeze(0).expand(b, -1, -1)
        pad = torch.zeros(b, len(goal), dtype=torch.bool)
        if self.model.relational and probs is None:
            probs = self.fact_probs(latents)
        return self.model.steps_to_go(
            latents, rows, pad, self.ids.expand(b, -1, -1), self.symbols.fact_rows, probs
        )

    @torch.no_grad()
    def steps_to_go_each(self, goal: list[int], probs: torch.Tensor) -> torch.Tensor:
        """The sum over the goal's facts of the relational critic's steps to go to each fact alone, from states
        given by their fact probabilities (B, F): the additive estimate (a fact that holds counts 0). A critic
        trained on goals of a few facts among few objects stays reliable on each fact of a large problem, where its
        estimate of the whole goal at once falls short (it was never shown so many goal facts). Not admissible (one
        step can serve several facts); a search guided by it ranks states by the work left."""
        return self.steps_to_go_per_fact(goal, probs).sum(1)

    def steps_to_go_per_fact(self, goal: list[int], probs: torch.Tensor) -> torch.Tensor:
        """(B, G): the relational critic's steps to go to each goal fact alone, 0 where the fact holds; every
        (state, fact) pair to estimate in one batch."""
        if not self.model.relational:
            raise ValueError("the additive estimate needs a relational critic (critic_kind: relational)")
        out = torch.zeros(probs.shape[0], len(goal))
        state, fact = (probs[:, goal] <= 0.5).nonzero(
            as_tuple=True
        )  # the (state, goal fact) pairs to estimate
        rows = self.symbols.fact_rows[torch.tensor(goal, dtype=torch.long)[fact]].unsqueeze(1)  # (P, 1, 1+A)
        for i in range(0, len(state), self.max_rows):
            part = slice(i, i + self.max_rows)
            k = len(state[part])
            est = self.model.steps_to_go(
                None,
                rows[part],
                torch.zeros(k, 1, dtype=torch.bool),
                self.ids[:1].expand(k, -1, -1),
                self.symbols.fact_rows,
                probs[state[part]],
            )
            out[state[part], fact[part]] = est.float()
        return out

    def facts_of(self, probs: torch.Tensor) -> frozenset[Atom]:
        return self.symbols.facts_of(probs > 0.5)


class EnsembleWorld(LatentWorld):
    """Several identity draws of the same model, averaged: latents are (B, E, N+1, D), read-outs combine the draws'.
    Object identities are arbitrary, so their draws act as an ensemble of world models. The draws run as one batch
    through the model.

    Facts: `readout` "probability" averages the draws' probabilities, "logit" their logits; a fact holds when that
    is above `threshold`. `fact_probs` reports each fact's combined probability shifted so that 0.5 is the
    threshold (exactly the same numbers at the defaults), so every reader of facts keeps one rule: p > 0.5 holds."""

    def __init__(
        self,
        model: WorldModel,
        objects: list[str],
        seeds: list[int],
        init=None,
        readout: str = "probability",
        threshold: float = 0.5,
        symbols: ProblemSymbols | None = None,
    ):
        symbols = symbols or ProblemSymbols(model.vocab, objects, init)
        draws = [LatentWorld(model, objects, s, init, symbols) for s in seeds]
        self.model = model.eval()
        self.symbols = draws[0].symbols
        self.ids = torch.cat([w.ids for w in draws], 0)  # (E, N, D)
        self.e = len(seeds)
        self.readout = readout
        self.shift = -float(torch.logit(torch.tensor(threshold, dtype=torch.float64)))

    def _ids(self, b: int) -> torch.Tensor:
        return self.ids.repeat(b, 1, 1)  # (B*E, N, D), draw-minor

    @torch.no_grad()
    @_chunked
    def encode(self, states: list[list[int]]) -> torch.Tensor:
        b = len(states)
        rows, pad = fact_batch(self.symbols, states)
        z = self.model.encode(
            rows.repeat_interleave(self.e, 0), pad.repeat_interleave(self.e, 0), self._ids(b)
        )
        return z.view(b, self.e, *z.shape[1:])

    @torch.no_grad()
    @_chunked
    def step(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = latents.shape[0]
        rows = self.symbols.action_rows[actions].repeat_interleave(self.e, 0)
        z = self.model.predict(latents.flatten(0, 1), rows, self._ids(b))
        return z.view(latents.shape)

    @torch.no_grad()
    @_chunked(readout="fact_rows")
    def fact_probs(self, latents: torch.Tensor) -> torch.Tensor:
        logits = self.model.fact_probe(latents.flatten(0, 1), self.symbols.fact_rows)
        logits = logits.view(latents.shape[0], self.e, -1)
        if self.readout == "logit":
            return torch.sigmoid(logits.mean(1) + self.shift)
        p = torch.sigmoid(logits).mean(1)
        return p if not self.shift else torch.sigmoid(torch.logit(p) + self.shift)

    @torch.no_grad()
    @_chunked(readout="action_rows")
    def applicable_probs(self, latents: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.model.applicability(latents.flatten(0, 1), self.symbols.action_rows))
        return p.view(latents.shape[0], self.e, -1).mean(1)

    @torch.no_grad()
    @_chunked
    def steps_to_go(
        self, latents: torch.Tensor, goal: list[int], probs: torch.Tensor | None = None
    ) -> torch.Tensor:
        b = latents.shape[0]
        # the relational critic reads only the facts: once per state, on the draws' averaged probabilities
        if self.model.relational:
            rows = self.symbols.fact_rows[goal].unsqueeze(0).expand(b, -1, -1)
            pad = torch.zeros(b, len(goal), dtype=torch.bool)
            return self.model.steps_to_go(
                latents[:, 0],
                rows,
                pad,
                self.ids[:1].expand(b, -1, -1),
                self.symbols.fact_rows,
                self.fact_probs(latents) if probs is None else probs,
            )
        rows = self.symbols.fact_rows[goal].unsqueeze(0).expand(b * self.e, -1, -1)
        pad = torch.zeros(b * self.e, len(goal), dtype=torch.bool)
        return self.model.critic(latents.flatten(0, 1), rows, pad, self._ids(b)).view(b, self.e).mean(1)
