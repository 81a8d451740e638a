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
    # Static predicates (no action adds or deletes them: a problem's types and fixed structure, such as logistics'
    # TRUCK or in-city) and, per action, its atoms in argument positions: the static preconditions, then every
    # fluent atom it reads or writes. With static preconditions, a problem's candidate actions are those its static
    # facts allow (typed grounding: a truck is never driven to a city) and its candidate fluent facts those the
    # candidate actions mention; what can hold or run in a state is still the model's to say. Empty for domains
    # without them (blocksworld: every action over every tuple of distinct objects).
    static: tuple[str, ...] = ()
    typing: tuple[tuple[str, tuple[Atom, ...], tuple[Atom, ...]], ...] = ()

    @classmethod
    def from_domain(cls, domain) -> Vocabulary:
        static = tuple(sorted(domain.static_predicates))
        typing = []
        if any(a[0] in static for s in domain.actions.values() for a in s.precondition):
            for name, s in sorted(domain.actions.items()):
                params = list(s.parameters)

                def positional(atoms, params=params):
                    out = []
                    for a in atoms:
                        if all(x in params for x in a[1:]) and tuple(a) not in out:
                            out.append((a[0], *(params.index(x) for x in a[1:])))
                    return tuple(out)

                typing.append(
                    (
                        name,
                        positional([a for a in s.precondition if a[0] in static]),
                        positional([a for a in s.precondition + s.add + s.delete if a[0] not in static]),
                    )
                )
        return cls(
            tuple(sorted(domain.predicates.items())),
            tuple(sorted((a, len(s.parameters)) for a, s in domain.actions.items())),
            static if typing else (),
            tuple(typing),
        )

    @property
    def typed(self) -> bool:
        return bool(self.typing)

    @property
    def max_arity(self) -> int:
        return max([n for _, n in self.predicates] + [n for _, n in self.actions] + [1])

    def to_dict(self) -> dict:
        d = {"predicates": [list(p) for p in self.predicates], "actions": [list(a) for a in self.actions]}
        if self.typing:
            d["static"] = list(self.static)
            d["typing"] = [
                [name, [list(a) for a in st], [list(a) for a in fl]] for name, st, fl in self.typing
            ]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        def atoms(xs):
            return tuple((str(a[0]), *(int(i) for i in a[1:])) for a in xs)

        return cls(
            tuple((p, int(n)) for p, n in d["predicates"]),
            tuple((a, int(n)) for a, n in d["actions"]),
            tuple(d.get("static", ())),
            tuple((name, atoms(st), atoms(fl)) for name, st, fl in d.get("typing", ())),
        )


class ProblemSymbols:
    """One problem's objects, and the candidate ground facts and actions over them: every symbol applied to every
    tuple of distinct objects, or, in a domain with static preconditions, the actions the problem's static facts
    allow and the facts they mention (see `Vocabulary.typing`). The model, not the symbols, decides what can hold
    or run. `init`: the problem's facts (only its static ones are read; needed when the vocabulary is typed)."""

    def __init__(self, vocab: Vocabulary, objects: list[str], init=None):
        self.vocab = vocab
        self.objects = list(objects)
        self.object_index = {o: i for i, o in enumerate(self.objects)}
        if vocab.typed:
            if init is None:
                raise ValueError(
                    "this world's candidate actions follow the problem's static facts: pass init"
                )
            self._typed({tuple(f) for f in init if f and f[0] in vocab.static})
        else:
            self.facts, self.fact_rows = self._ground(vocab.predicates)
            self.actions, self.action_rows = self._ground(vocab.actions)
        self.fact_index = {f: i for i, f in enumerate(self.facts)}
        self.action_index = {x: i for i, x in enumerate(self.actions)}

    def _typed(self, static: set[Atom]) -> None:
        a = self.vocab.max_arity
        arity = dict(self.vocab.actions)
        pid = {p: i for i, (p, _) in enumerate(self.vocab.predicates)}
        aid = {x: i for i, (x, _) in enumerate(self.vocab.actions)}
        objects = self.objects
        fact_set: set[tuple[int, ...]] = set()  # (predicate id, object positions...)
        actions: list[tuple[int, ...]] = []
        for name, st, fl in self.vocab.typing:
            n = arity[name]

            def bind(args: list[int], st=st, fl=fl, n=n, name=name):
                k = len(args)
                for atom in st:  # the static atoms whose last argument was just bound
                    pos = atom[1:]
                    if (
                        pos
                        and max(pos) == k - 1
                        and (atom[0], *(objects[args[j]] for j in pos)) not in static
                    ):
                        return
                if k == n:
                    actions.append((aid[name], *args))
                    for f in fl:
                        fact_set.add((pid[f[0]], *(args[j] for j in f[1:])))
                    return
                for o in range(len(objects)):
                    if o not in args:
                        bind(args + [o])

            bind([])
        for f in static:
            if f[0] in pid and all(x in self.object_index for x in f[1:]):
                fact_set.add((pid[f[0]], *(self.object_index[x] for x in f[1:])))
        facts, rows = [], []
        for row in sorted(fact_set):
            facts.append((self.vocab.predicates[row[0]][0], *(objects[i] for i in row[1:])))
            rows.append([*row, *([-1] * (a + 1 - len(row)))])
        self.facts = facts
        self.fact_rows = torch.tensor(rows, dtype=torch.long).reshape(-1, 1 + a)
        actions.sort()
        self.actions = [(self.vocab.actions[r[0]][0], *(objects[i] for i in r[1:])) for r in actions]
        self.action_rows = torch.tensor(
            [[*r, *([-1] * (a + 1 - len(r)))] for r in actions], dtype=torch.long
        ).reshape(-1, 1 + a)

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
