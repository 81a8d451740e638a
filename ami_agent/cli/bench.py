"""`ami-agent bench agent`, `bench reader` and `bench load`: the agent on suites and phrasings, the free-phrasing
reader alone, and concurrent clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    BackendOpt,
    DecodeOpt,
    PlanbenchDir,
    UserError,
    _agent,
    bench_app,
    err,
    out,
)
from planner.worlds.errors import WorldError

OutRecords = Annotated[Path | None, typer.Option("--out", help="Write one record per query (JSON lines)")]


def _suite_queries(suite: str, planbench_dir, limit):
    """The suite's instances that have a natural-language query, and their domain."""
    from eval.suites import load_suite
    from planner.worlds.pddl import load_domain

    insts = [i for i in load_suite(suite, planbench_dir, limit) if i.query]
    if not insts:
        raise UserError(f"suite {suite} has no natural-language queries")
    return insts, load_domain(insts[0].domain_path)


def _write_records(out_path: Path | None, rows: list[dict]) -> None:
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))


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
    out_path: OutRecords = None,
):
    """Ask the agent each query of a suite in its own words (PlanBench's phrasing); validate the answers' plans."""
    import statistics
    import tempfile
    import time

    from planner.worlds.pddl import load_domain, load_problem
    from planner.worlds.plans import parse_plan_text, validate

    if phrasing == "planbench":
        insts, d = _suite_queries(suite, planbench_dir, limit)
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
                    "objects": len(p.objects),
                    "node_seconds": {t["node"]: t.get("seconds") for t in res["trace"] if "node" in t},
                }
            )
            err.print(
                f"\r[{k}/{len(cases)}] valid {ok}/{k}  last {name} {res['status']} {dt:.2f}s   ", end=""
            )
    finally:
        agent.close()
    err.print()
    _write_records(out_path, rows)
    out.print(
        json.dumps(
            {
                "suite": suite,
                "queries": len(cases),
                "valid": ok,
                "valid_rate": round(ok / len(cases), 4),
                "median_seconds": round(statistics.median(times), 2),
                **_median_by_size(rows),
                "backend": backend,
                "decode": decode,
            }
        )
    )


@bench_app.command("reader")
def bench_reader_cmd(
    phrasing: Annotated[
        str,
        typer.Option(
            help="heldout (phrasings the reader never trained on) | train (its training phrasings, fresh problems)"
        ),
    ] = "heldout",
    limit: Annotated[int, typer.Option(help="Number of generated requests")] = 50,
    constrained: Annotated[
        bool,
        typer.Option(
            help="Answers limited to facts about the objects each clause names (as the agent reads); "
            "--no-constrained: the adapter writes free text (ablation; stray phrasings are still snapped)"
        ),
    ] = True,
    backend: BackendOpt = "auto",
    out_path: OutRecords = None,
):
    """The LoRA reader alone: how many generated requests it reads into exactly the problem described (start and
    goal), and, per request, each clause's reading and the facts it missed or added. No planning, no decoding."""
    import random
    import shutil
    import tempfile
    import time

    from ami_agent.agent import WORLDS_DIR
    from ami_agent.reader import (
        READER_DIR,
        TRAIN,
        complete_state,
        free_text,
        read_clauses,
        statement_of,
    )
    from planner.worlds.generate import ProblemGenerator, blocksworld_names
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_domain

    if phrasing not in ("heldout", "train"):
        raise UserError(f"--phrasing must be heldout or train, got {phrasing!r}")
    if not (READER_DIR / "adapter" / "adapter_config.json").exists():
        raise UserError(
            "no trained reader adapter in checkpoints/reader: train one with `ami-agent train reader`"
        )
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
    names = blocksworld_names(d)
    if phrasing == "heldout":
        from eval.heldout_phrasings import heldout_requests

        cases = heldout_requests(d, vb, limit)
    else:
        rng = random.Random(7)  # not the training seed: fresh problems and sentences
        gen = ProblemGenerator(d, None, rng)
        cases = []
        for _ in range(limit):
            p = gen.sample(rng.randint(3, 5))
            cases.append((free_text(vb, p.init, p.goal, TRAIN, rng, names)[0], p))
    home = Path(tempfile.mkdtemp())
    agent = _agent(backend, None, home / "bench.sqlite")
    reader = agent.world.reader
    try:
        backend_, tok = agent.reader_backend()
        served_by = backend_.name
        err.print(f"reading {len(cases)} requests ({phrasing} phrasings) ...")
        t0 = time.perf_counter()
        read = read_clauses(backend_, tok, [t for t, _ in cases], vb=vb if constrained else None)
        seconds = time.perf_counter() - t0
    finally:
        agent.close()
        shutil.rmtree(home, ignore_errors=True)
    rows, exact = [], 0
    for k, ((text, p), sentences) in enumerate(zip(cases, read), start=1):
        standard = statement_of(sentences, vb)
        init, goal, error = set(), set(), None
        try:
            if not standard:
                raise WorldError("no start or no goal read, or a clause places a block it does not name")
            init, goal = reader.statement(standard)
            init = complete_state(init, sorted({o for a in init | goal for o in a[1:]}), names)
        except WorldError as e:
            error = str(e)
        want = {("start", a) for a in p.init} | {("goal", a) for a in p.goal}
        got = {("start", a) for a in init} | {("goal", a) for a in goal}
        ok = error is None and got == want
        exact += ok
        rows.append(
            {
                "request": f"{phrasing}-{k}",
                "text": text,
                "exact": ok,
                "statement": standard,
                "error": error,
                "missing": sorted(f"{sec}: {vb.fact(a)}" for sec, a in want - got),
                "extra": sorted(f"{sec}: {vb.fact(a)}" for sec, a in got - want),
                "clauses": [[c, a] for _, clauses in sentences for c, a in clauses],
            }
        )
    _write_records(out_path, rows)
    out.print(
        json.dumps(
            {
                "phrasing": phrasing,
                "requests": len(cases),
                "exact": exact,
                "exact_rate": round(exact / max(1, len(cases)), 4),
                "clauses": sum(len(r["clauses"]) for r in rows),
                "seconds": round(seconds, 2),
                "constrained": constrained,
                "backend": served_by,
            }
        )
    )


def _median_by_size(rows: list[dict]) -> dict:
    """The issue's latency target is for 4-5 block problems: their median, and each node's median."""
    import statistics

    mid = [r for r in rows if 4 <= r["objects"] <= 5]
    if not mid:
        return {}
    nodes = sorted({n for r in mid for n in r["node_seconds"]})
    return {
        "queries_4_5_objects": len(mid),
        "median_seconds_4_5_objects": round(statistics.median(r["seconds"] for r in mid), 2),
        "median_node_seconds_4_5_objects": {
            n: round(statistics.median(r["node_seconds"].get(n) or 0.0 for r in mid), 3) for n in nodes
        },
    }


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
    total = clients * requests
    res = run_load(
        url,
        d,
        vb,
        clients,
        requests,
        progress=lambda n, e, m: err.print(
            f"\r[{n}/{total}] errors {e}, wrong plans {m}, {time.perf_counter() - t0:.0f}s   ", end=""
        ),
    )
    err.print()
    summary = res.summary() | {"wall_seconds": round(time.perf_counter() - t0, 1)}
    out.print(json.dumps(summary))
    if server:
        server.should_exit = True


@bench_app.command("guardrails")
def bench_guardrails_cmd(
    suite: Annotated[
        str, typer.Option(help="Suite whose queries get one stated constraint each")
    ] = "planbench:blocksworld",
    limit: Annotated[int | None, typer.Option(help="Only the first N problems")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the constraint draw")] = 0,
    backend: BackendOpt = "auto",
    decode: DecodeOpt = "parallel",
    planbench_dir: PlanbenchDir = None,
    out_path: OutRecords = None,
):
    """Each query plus one constraint in words ("Never put the red block on the table."); the simulator checks
    every returned plan against it, and decides by exhaustive search whether the goal could be reached at all."""
    import tempfile
    import time

    from eval.guardrails import guardrail_cases, honours
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_problem
    from planner.worlds.plans import parse_plan_text, validate

    insts, d = _suite_queries(suite, planbench_dir, limit)
    vb = Verbalizer(d, NLConfig.load(insts[0].nl_config_path) if insts[0].nl_config_path else None)
    err.print(f"drawing constraints and judging feasibility for {len(insts)} problems ...")
    cases = guardrail_cases([(i.name, i.query, load_problem(i.problem_path, d)) for i in insts], d, vb, seed)
    agent = _agent(backend, None, Path(tempfile.mkdtemp()) / "bench.sqlite", decode)
    agent.warm()
    rows = []
    try:
        for k, c in enumerate(cases, start=1):
            t0 = time.perf_counter()
            res = agent.ask(c.text, thread=f"guard-{k}")
            dt = time.perf_counter() - t0
            rec = res.get("plan_record") or {}
            valid = honoured = None
            if res["status"] == "solved":
                try:
                    steps = parse_plan_text("\n".join(rec["plan"]), d, c.problem)
                    valid = validate(d, c.problem, steps).valid
                    honoured = honours(d, c.problem, steps, c.constraint)
                except WorldError:
                    valid = honoured = False
            guard = next((t for t in res["trace"] if t.get("node") == "guard"), {})
            rows.append(
                {
                    "instance": c.name,
                    "constraint": {"kind": c.constraint.kind, "target": list(c.constraint.target)},
                    "sentence": c.constraint.text,
                    "feasible": c.feasible,
                    "status": res["status"],
                    "valid": valid,
                    "honoured": honoured,
                    "constraints_read": guard.get("constraints"),
                    "seconds": round(dt, 3),
                    "plan": rec.get("plan", []),
                    "reply": res["reply"],
                }
            )
            returned = [r for r in rows if r["status"] == "solved"]
            err.print(
                f"\r[{k}/{len(cases)}] returned {len(returned)}, honoured "
                f"{sum(bool(r['honoured']) for r in returned)}  last {c.name} {res['status']} {dt:.2f}s   ",
                end="",
            )
    finally:
        agent.close()
    err.print()
    _write_records(out_path, rows)
    returned = [r for r in rows if r["status"] == "solved"]
    feas = [r for r in rows if r["feasible"]]
    infeas = [r for r in rows if not r["feasible"]]
    out.print(
        json.dumps(
            {
                "suite": suite,
                "queries": len(rows),
                "returned_plans": len(returned),
                "honoured": sum(bool(r["honoured"]) for r in returned),
                "honour_rate": round(sum(bool(r["honoured"]) for r in returned) / len(returned), 4)
                if returned
                else None,
                "feasible": len(feas),
                "feasible_solved_valid_honoured": sum(
                    r["status"] == "solved" and bool(r["valid"]) and bool(r["honoured"]) for r in feas
                ),
                "infeasible": len(infeas),
                "infeasible_no_plan": sum(r["status"] == "no_plan" for r in infeas),
                "by_status": {
                    s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})
                },
                "backend": backend,
            }
        )
    )
