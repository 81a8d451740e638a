"""World-model checkpoints: one `.pt` file (config, fp16 weights, the training record) and the record again as JSON
beside it. Loading needs only the model code, never the simulator that made the training data."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from planner.jepa import WorldModel


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of another kind: says which file and what to do."""


def save_checkpoint(model: WorldModel, out: Path, record: dict) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"config": model.config_dict(), "state_dict": state, "record": record}, out)
    record = dict(record, checkpoint_bytes=out.stat().st_size)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")


def load_checkpoint(path: Path) -> tuple[WorldModel, dict]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint. Train one with `ami-agent train world-model`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = WorldModel.from_config_dict(blob["config"])
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        )
    except Exception as e:  # a file of another kind, a truncated file, an incompatible version
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(
            f"{path}: not a readable world-model checkpoint ({type(e).__name__}: {first}). "
            "Retrain it with `ami-agent train world-model`"
        ) from None
    model.eval()
    return model, blob.get("record", {})
