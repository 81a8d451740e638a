"""Symbols to tensors: a domain's vocabulary (predicates and operators with their arities) and a problem's objects.

Objects get no fixed index in the model: each problem draws identity slots (see `jepa.ObjectIdentity`), so a model
trained on 3-5 objects runs on 15. Facts and actions are rows `(symbol id, arg_1, ..., arg_A)` of object positions,
-1 where an argument is absent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

Atom = tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    """What the world model knows of a domain: names and arities, nothing of preconditions or effects."""

    predicates: tuple[tuple[str, int], ...]
    actions: tuple[tuple[str, int], ...]

    @classmethod
    def from_domain(cls, domain) -> Vocabulary:
        return cls(
            tuple(sorted(domain.predicates.items())),
            tuple(sorted((a, len(s.parameters)) for a, s in domain.actions.items())),
        )

    @property
    def max_arity(self) -> int:
        return max([n for _, n in self.predicates] + [n for _, n in self.actions] + [1])

    def to_dict(self) -> dict:
        return {"predicates": [list(p) for p in self.predicates], "actions": [list(a) for a in self.actions]}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(
            tuple((p, int(n)) for p, n in d["predicates"]), tuple((a, int(n)) for a, n in d["actions"])
        )


class ProblemSymbols:
    """One problem's objects, and the candidate ground facts and actions over them (every symbol applied to every
    tuple of distinct objects: the model, not the symbols, decides what can hold or run)."""

    def __init__(self, vocab: Vocabulary, objects: list[str]):
        self.vocab = vocab
        self.objects = list(objects)
        self.object_index = {o: i for i, o in enumerate(self.objects)}
        self.facts, self.fact_rows = self._ground(vocab.predicates)
        self.fact_index = {f: i for i, f in enumerate(self.facts)}
        self.actions, self.action_rows = self._ground(vocab.actions)
        self.action_index = {x: i for i, x in enumerate(self.actions)}

    def _ground(self, symbols) -> tuple[list[Atom], torch.Tensor]:
        """Every symbol over every tuple of distinct objects: the atoms and their rows (id, positions, -1 pad)."""
        a = self.vocab.max_arity
        atoms, rows = [], []
        for sid, (name, arity) in enumerate(symbols):
            for args in itertools.permutations(range(len(self.objects)), arity):
                atoms.append((name, *(self.objects[i] for i in args)))
                rows.append([sid, *args, *([-1] * (a - arity))])
        return atoms, torch.tensor(rows, dtype=torch.long).reshape(-1, 1 + a)

    def fact_mask(self, atoms) -> torch.Tensor:
        """A multi-hot vector over the candidate facts; facts outside them (e.g. a block on itself) are dropped."""
        m = torch.zeros(len(self.facts), dtype=torch.bool)
        idx = [self.fact_index[a] for a in atoms if a in self.fact_index]
        m[idx] = True
        return m

    def facts_of(self, mask: torch.Tensor) -> frozenset[Atom]:
        return frozenset(self.facts[i] for i in mask.nonzero().flatten().tolist())
