"""The plan record shared by `plan`, `eval` and `ask --json` (../shared/ARCHITECTURE.md): one JSON object per
problem, one per line in files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

STATUSES = ("solved", "no_plan", "error", "clarify", "chat")


@dataclass
class PlanRecord:
    instance: str
    system: str
    status: str
    plan: list[str] = field(default_factory=list)  # PDDL action syntax with the problem's own object names
    reason: str = ""
    seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    expansions: int = 0
    energies: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(d["seconds"], 4)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> PlanRecord:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
