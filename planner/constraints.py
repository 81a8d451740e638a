"""Constraints a user states ("never put the red block on the table"), as plain data, and the one check of a plan
against them. The search turns them into guardrail energies (planner.energies); the planner's own check, the
agent's audit and the evaluation's judge all call `Constraint.first_break`, on the world model's predicted states
or on the simulator's true ones."""

from __future__ import annotations

from dataclasses import dataclass

Atom = tuple[str, ...]
KINDS = ("forbid_operator", "forbid_object", "forbid_fact", "require_fact")


@dataclass(frozen=True)
class Constraint:
    """kind is forbid_operator (target ("stack",), or ("unload-truck", "l1-0"): the operator with those objects
    among its arguments), forbid_object (("c",)), forbid_fact (("ontable", "a")) or require_fact (("on", "a", "b"));
    text: the user's words, quoted back when the constraint blocks the goal."""

    kind: str
    target: tuple[str, ...]
    text: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown constraint kind {self.kind!r}: use one of {', '.join(KINDS)}")

    def describe(self) -> str:
        return self.text or f"{self.kind.replace('_', ' ')} {' '.join(self.target)}"

    def breaks(self, action: tuple[str, ...] | None, state) -> bool:
        """Does this action (None: no action) or the state it leads to break the constraint?"""
        if action is not None:
            if self.kind == "forbid_operator" and self.forbids(action):
                return True
            if self.kind == "forbid_object" and self.target[0] in action[1:]:
                return True
        if self.kind == "forbid_fact" and tuple(self.target) in state:
            return True
        return self.kind == "require_fact" and tuple(self.target) not in state

    def forbids(self, action: tuple[str, ...]) -> bool:
        """A forbid_operator constraint's actions: its operator, with its objects (if any) among the arguments."""
        return action[0] == self.target[0] and set(self.target[1:]) <= set(action[1:])

    def first_break(self, actions: list[tuple[str, ...]], states: list) -> str:
        """The first step of a plan that breaks the constraint, in words, or "". states: the facts before the
        plan and after each step (len(actions) + 1 sets)."""
        if self.breaks(None, states[0]):
            return f"it is already broken at the start ({self.describe()})"
        for i, (a, s) in enumerate(zip(actions, states[1:]), start=1):
            if self.breaks(tuple(a), s):
                return f"step {i} ({' '.join(a)})"
        return ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "target": list(self.target), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict) -> Constraint:
        return cls(d["kind"], tuple(d["target"]), d.get("text", ""))
