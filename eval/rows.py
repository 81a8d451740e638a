"""An evaluation row: the plan record (planner/record.py) wrapped with what the judge knows about its problem.
Rows are one JSON object per line: the record's fields, then suite, valid, optimal_length, solvable and cpu_seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from planner.record import PlanRecord

SYSTEMS = (
    "ami",
    "ami-planner",
    "ar-zero-shot",
    "ar-sft",
    "ar-sft-sc",
    "ar-sft-verify",
    "oracle",
)  # what `ami-agent eval` runs


@dataclass
class Row:
    record: PlanRecord
    valid: bool | None  # the validator's verdict on the plan; None when no plan was returned
    optimal_length: int | None = None
    suite: str = ""
    solvable: bool | None = None
    cpu_seconds: float = 0.0  # CPU time (all cores) spent on the answer: the record's `seconds` are wall time

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            **self.record.to_dict(),
            "valid": self.valid,
            "optimal_length": self.optimal_length,
            "solvable": self.solvable,
            "cpu_seconds": round(self.cpu_seconds, 4),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        return cls(
            PlanRecord.from_dict(d),
            d.get("valid"),
            d.get("optimal_length"),
            d.get("suite", ""),
            d.get("solvable"),
            d.get("cpu_seconds", 0.0),
        )


def write_jsonl(path: Path | None, rows: list[dict]) -> None:
    """Rows as JSON lines into `path` (its folder made); nothing when no path is given."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
