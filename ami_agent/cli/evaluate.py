"""`ami-agent eval`: systems x suites (eval/harness.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    Backend,
    Domain,
    Instances,
    Limit,
    NLConfigOpt,
    PlanbenchDir,
    Suites,
    UserError,
    app,
    err,
    out,
    problem_files,
    temporary_agent,
    this_command,
)
from eval.rows import SYSTEMS

# the report's oracle: A* a problem at most this long (30 blocks can take longer)
REPORT_ORACLE_SECONDS = 10.0


def system_names(systems: str) -> list[str]:
    """--systems a,b,c -> the names, each checked against SYSTEMS."""
    names = [s.strip() for s in systems.split(",") if s.strip()]
    bad = [s for s in names if s not in SYSTEMS]
    if bad:
        raise UserError(f"unknown system(s) {', '.join(bad)}: choose from {', '.join(SYSTEMS)}")
    return names


@app.command("eval")
def eval_cmd(
    suite: Suites = None,
    systems: Annotated[
        str, typer.Option(help="Comma-separated: " + ", ".join(SYSTEMS))
    ] = "ami-planner,oracle",
    limit: Limit = None,
    domain: Domain = None,
    instances: Instances = None,
    nl_config: NLConfigOpt = None,
    sc_samples: Annotated[
        int,
        typer.Option(help="Samples for ar-sft-sc (self-consistency); 3 x ar-sft's ~78 tokens ~ ami's ~225"),
    ] = 3,
    concurrency: Annotated[
        int, typer.Option(help="ami: queries asked at once (the decoder batches them)", min=1)
    ] = 1,
    backend: Backend = "auto",
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("runs/eval"),
):
    """Systems x suites: plan records per system, summary.json, report.md and plots; resumable."""
    from eval import harness

    names = system_names(systems)
    cases = []
    for spec in suite or []:
        try:
            cases += harness.load_cases(spec, planbench_dir, limit, out_dir / "problems")
        except ValueError as e:
            raise UserError(str(e)) from None
    if domain or instances:
        if not (domain and instances):
            raise UserError("--domain and --instances go together")
        from eval.cases import Case, zero_shot_query
        from planner.worlds.nl import NLConfig, Verbalizer
        from planner.worlds.pddl import load_domain, load_problem

        d = load_domain(domain)
        vb = Verbalizer(d, NLConfig.load(nl_config) if nl_config else None)
        for f in problem_files(instances)[:limit]:
            p = load_problem(f, d)
            cases.append(Case(str(instances), f.name, d, p, vb, zero_shot_query(vb, p), None, None))
    if not cases:
        raise UserError("nothing to evaluate: give --suite, or --domain D.pddl --instances DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_systems(names, cases, out_dir, backend, sc_samples, concurrency)
    # the report covers every system recorded in the folder for these problems, not only this run's
    recorded = [s for s in SYSTEMS if (out_dir / f"{s}.jsonl").exists()]
    rows = [
        r
        for r in harness.load_records(out_dir, recorded)
        if (r["suite"], r["instance"]) in {(c.suite, c.name) for c in cases}
    ]
    summary = harness.summarize(rows)
    frontier = harness.frontier_rows(planbench_dir, sorted({c.suite for c in cases}))
    (out_dir / "summary.json").write_text(
        json.dumps(
            {"summary": summary, "reference": frontier, "command": this_command()},
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


def run_systems(
    names: list[str],
    cases,
    out_dir: Path,
    backend: str,
    sc_samples: int,
    concurrency: int,
    oracle_seconds: float = 60.0,
) -> None:
    """Runs each system on the cases not yet recorded in out_dir/<system>.jsonl. The language-model systems share
    one serving backend, the agent has its own; one is closed before the other starts (each engine holds its KV
    cache: four at once do not fit in 24 GB)."""
    from eval import harness

    log = lambda m, end="\n": err.print(m, end=end)  # noqa: E731
    agent = None
    llm = None

    def get_agent():
        nonlocal agent, llm
        if agent is None:
            if llm is not None:
                llm[0].close()
                llm = None
            agent = temporary_agent(backend)
            agent.warm()
        return agent

    def get_llm():
        nonlocal llm, agent
        if llm is None:
            from transformers import AutoTokenizer

            from decoder.backends import make_backend
            from decoder.base_model import resolve_base_model

            if agent is not None:
                agent.close()
                agent = None
            mdir = Path(resolve_base_model(None))
            llm = (make_backend(backend, mdir), AutoTokenizer.from_pretrained(mdir))
        return llm

    def sft_adapter(world: str) -> str:
        """The ar-sft adapter for a world's queries (its own where one was added for it), loaded merged."""
        from eval.baselines import ADAPTER, AR_SFT_DIR, adapter_dir

        folder = adapter_dir(world)
        path = folder / "adapter"
        if not (path / "adapter_config.json").exists():
            raise UserError(f"{path}: no ar-sft adapter. Train it: ami-agent train ar-sft")
        name = ADAPTER if folder == AR_SFT_DIR else f"{ADAPTER}-{world}"
        b, _ = get_llm()
        b.add_adapter(name, path, merge=True)  # served as the decoder is: merged weights
        return name

    def run_llm(system: str, cs: list):
        adapter_for = None if system == "ar-zero-shot" else sft_adapter
        samples = sc_samples if system == "ar-sft-sc" else 1
        verify = system == "ar-sft-verify"
        return harness.run_llm_by_world(cs, get_llm, system, adapter_for, samples=samples, verify=verify)

    def runner(system: str):
        if system == "oracle":
            return lambda cs: harness.run_oracle(cs, oracle_seconds)
        if system == "ami-planner":
            return harness.run_planner
        if system == "ami":
            bound = get_agent()
            return lambda cs: harness.run_agent(cs, bound, concurrency)
        return lambda cs: run_llm(system, cs)

    try:
        for system in names:
            # runner(system) only when there is work: a finished system needs no engine start
            n = harness.run_system(system, cases, out_dir, lambda cs, s=system: runner(s)(cs), log)
            err.print(f"{system}: {n} new record(s) in {out_dir / (system + '.jsonl')}")
    finally:
        if agent:
            agent.close()
        elif llm:
            llm[0].close()


@app.command("report")
def report_cmd(
    systems: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(SYSTEMS))] = ",".join(SYSTEMS),
    limit: Annotated[
        int | None, typer.Option(help="Problems per suite (default 50); --limit 10 for a quick look", min=1)
    ] = None,
    worlds: Annotated[
        str, typer.Option(help="Comma-separated: blocksworld, mystery")
    ] = "blocksworld,mystery",
    sc_samples: Annotated[int, typer.Option(help="Samples for ar-sft-sc")] = 3,
    concurrency: Annotated[int, typer.Option(help="ami: queries asked at once", min=1)] = 4,
    backend: Backend = "auto",
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (records, problems, report)")] = Path(
        "runs/report"
    ),
    publish: Annotated[
        Path | None,
        typer.Option(help="Also copy report.md, summary.json and the plots here (docs/results/scaling)"),
    ] = None,
):
    """The scaling report: every system on generated blocksworld and mystery problems by optimal plan length K
    and by block count N, with success, CPU-seconds and tokens; resumable (what is recorded in --out is kept)."""
    import shutil

    from eval import harness, report
    from eval.scaling import WORLDS, scaling_suites

    names = system_names(systems)
    ws = [w.strip() for w in worlds.split(",") if w.strip()]
    if not ws or any(w not in WORLDS for w in ws):
        raise UserError(f"--worlds takes {', '.join(WORLDS)}; got {worlds!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    suites = scaling_suites(ws)
    for k, spec in enumerate(suites, 1):
        err.print(f"\rproblems: {spec} [{k}/{len(suites)}]          ", end="")
        cases += harness.load_cases(spec, planbench_dir, limit, out_dir / "problems")
    err.print("")
    # cheap systems first: their curves are on disk before the language models start
    order = sorted(
        names, key=lambda s: ("oracle", "ami-planner").index(s) if s in ("oracle", "ami-planner") else 2
    )
    run_systems(order, cases, out_dir, backend, sc_samples, concurrency, REPORT_ORACLE_SECONDS)
    keep = {(c.suite, c.name) for c in cases}
    recorded = [s for s in SYSTEMS if (out_dir / f"{s}.jsonl").exists()]
    rows = [r for r in harness.load_records(out_dir, recorded) if (r["suite"], r["instance"]) in keep]
    summary = report.write(out_dir, rows, this_command())
    for w, h in summary["headline"].items():
        for part, v in h.items():
            if part != "cost":
                out.print(f"{w} {part}: " + ", ".join(f"{s} {x}" for s, x in v["success"].items()))
    if publish:
        publish.mkdir(parents=True, exist_ok=True)
        for f in ("report.md", "summary.json", "scaling_k.png", "scaling_n.png", "cost.png"):
            shutil.copy(out_dir / f, publish / f)
    out.print(f"wrote {out_dir}/report.md, summary.json, scaling_k.png, scaling_n.png, cost.png")
