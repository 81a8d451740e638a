"""`ami-agent bench agent`, `bench reader`, `bench load`, `bench guardrails`, `bench states` and `bench logistics`:
the agent on suites and phrasings, the free-phrasing reader alone, concurrent clients, stated constraints, questions
about a plan's states, logistics requests in people's own words. The simulator judges every answer."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    Backend,
    Limit,
    PlanbenchDir,
    UserError,
    bench_app,
    err,
    out,
    temporary_agent,
)

OutRecords = Annotated[Path | None, typer.Option("--out", help="Write one record per query (JSON lines)")]
Phrasing = Annotated[
    str,
    typer.Option(
        help="planbench (the suite's own queries) | free (requests and follow-up threads written by hand, apart "
        "from the reader's training: eval/data/)"
    ),
]


def _write_records(out_path: Path | None, rows: list[dict]) -> None:
    from eval.rows import write_jsonl

    write_jsonl(out_path, rows)


def _progress(k: int, n: int, text: str) -> None:
    err.print(f"\r[{k}/{n}] {text}   ", end="")


@bench_app.command("agent")
def bench_agent_cmd(
    suite: Annotated[
        str, typer.Option(help="Suite whose natural-language queries are asked")
    ] = "planbench:blocksworld",
    phrasing: Phrasing = "planbench",
    limit: Limit = 100,
    backend: Backend = "auto",
    planbench_dir: PlanbenchDir = None,
    out_path: OutRecords = None,
    requests: Requests = None,
):
    """Ask the agent each query (PlanBench's phrasing, or the hand-written free requests and threads); the
    validator judges the plans the answers carry."""
    from eval.agent_bench import judge_answer, suite_cases

    if phrasing == "free":
        return _bench_free(limit, backend, out_path, requests)
    if phrasing != "planbench":
        raise UserError(f"--phrasing must be planbench or free, got {phrasing!r}")
    cases, d = suite_cases(suite, planbench_dir, limit)
    if not cases:
        raise UserError(f"suite {suite} has no natural-language queries")
    a = temporary_agent(backend)
    a.warm()
    rows = []
    try:
        for k, (name, text, p) in enumerate(cases, start=1):
            t0 = time.perf_counter()
            res = a.ask(text, thread=f"bench-{k}")
            rows.append(judge_answer(d, p, name, res, time.perf_counter() - t0))
            ok = sum(r["valid"] for r in rows)
            _progress(
                k, len(cases), f"valid {ok}/{k}  last {name} {res['status']} {rows[-1]['seconds']:.2f}s"
            )
    finally:
        a.close()
    err.print()
    _write_records(out_path, rows)
    ok = sum(r["valid"] for r in rows)
    summary = {
        "suite": suite,
        "queries": len(cases),
        "valid": ok,
        "valid_rate": round(ok / len(cases), 4),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2),
        "backend": backend,
    }
    out.print(json.dumps(summary))


Requests = Annotated[
    list[Path] | None,
    typer.Option(
        "--requests",
        help="JSONL files of written requests (default: eval/data/free_requests.jsonl and free_followups.jsonl)",
    ),
]


def _free_cases(limit: int | None, files: list[Path] | None = None):
    from ami_agent.reader import Names
    from ami_agent.services import blocksworld
    from eval.free_requests import FOLLOWUPS, REQUESTS, load_cases

    d, vb = blocksworld()
    colours = Names(vb).obj
    for f in files or []:
        if not f.exists():
            raise UserError(f"{f}: no such file of written requests")
    return [c for f in files or [REQUESTS, FOLLOWUPS] for c in load_cases(colours, f, limit)], d


def _free_summary(rows: list[dict], field: str) -> dict:
    """How many rows have `field` true, in all, by expected outcome and by style."""
    n = sum(bool(r[field]) for r in rows)
    return {
        "requests": len(rows),
        field: n,
        f"{field}_rate": round(n / max(1, len(rows)), 4),
        "by_expect": _by(rows, "expect", field),
        "by_style": _by(rows, "style", field),
    }


def _by(rows: list[dict], key: str, field: str) -> dict:
    out: dict = {}
    for r in rows:
        n, k = out.get(r[key], (0, 0))
        out[r[key]] = (n + bool(r[field]), k + 1)
    return {k: f"{n}/{t}" for k, (n, t) in sorted(out.items())}


def _judged_threads(backend: str, cases, out_path: Path | None, answer) -> list[dict]:
    """answer(agent, case) -> the case's judged row (with "right" and "status"), each case in a thread of its own on
    one warm agent; progress as it goes; the rows written to out_path."""
    a = temporary_agent(backend)
    a.warm()
    rows = []
    try:
        for k, c in enumerate(cases, start=1):
            rows.append(answer(a, c))
            right = sum(r["right"] for r in rows)
            _progress(k, len(cases), f"right {right}/{k}  last {c.id} {rows[-1]['status']}")
    finally:
        a.close()
    err.print()
    _write_records(out_path, rows)
    return rows


def _bench_free(limit: int | None, backend: str, out_path: Path | None, files: list[Path] | None) -> None:
    """The hand-written requests end to end: each thread's turns asked in order, the last answer judged."""
    from eval.free_requests import judge_answer

    cases, d = _free_cases(limit, files)

    def answer(a, c) -> dict:
        t0 = time.perf_counter()
        for turn in c.turns:
            res = a.ask(turn, thread=f"free-{c.id}")
        return judge_answer(c, d, res) | {"seconds": round(time.perf_counter() - t0, 3)}

    rows = _judged_threads(backend, cases, out_path, answer)
    summary = {
        **_free_summary(rows, "right"),
        "no_plan_to_reachable": sum(r["no_plan_to_reachable"] for r in rows),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2),
        "backend": backend,
    }
    out.print(json.dumps(summary))


@bench_app.command("reader")
def bench_reader_cmd(
    limit: Limit = None, backend: Backend = "auto", out_path: OutRecords = None, requests: Requests = None
):
    """Perception alone on the hand-written requests and threads (eval/data/): how many it reads exactly (start,
    goal, rules; or asks the question the request calls for), with the time each reading takes. No planning."""
    from ami_agent.nodes import problem_of
    from ami_agent.reader import READER_DIR
    from eval.free_requests import judge_reading

    if not (READER_DIR / "adapter" / "adapter_config.json").exists():
        raise UserError(
            "no trained reader adapter in checkpoints/reader: train one with `ami-agent train reader`"
        )
    cases, _ = _free_cases(limit, requests)
    a = temporary_agent(backend)
    rows = []
    try:
        a.services.read_free("the red block is on the table. I want it on the blue one.")  # loads and warms
        for k, c in enumerate(cases, start=1):
            previous = None
            for turn in c.turns:
                t0 = time.perf_counter()
                world, p = a.services.perceive(turn, previous)
                seconds = time.perf_counter() - t0
                if p.kind in ("problem", "followup"):
                    previous = problem_of(world, p) | {"before": previous}
            rows.append(
                judge_reading(c, p.kind, previous if p.kind in ("problem", "followup") else None, p.question)
                | {"seconds": round(seconds, 3), "reader": p.reader}
            )
            _progress(k, len(cases), f"exact {sum(r['exact'] for r in rows)}/{k}  last {c.id} {p.kind}")
    finally:
        a.close()
    err.print()
    _write_records(out_path, rows)
    summary = {
        **_free_summary(rows, "exact"),
        "median_seconds": round(statistics.median(r["seconds"] for r in rows), 3),
    }
    out.print(json.dumps(summary))


@bench_app.command("load")
def bench_load_cmd(
    clients: Annotated[int, typer.Option(help="Concurrent clients, each its own thread")] = 16,
    requests: Annotated[int, typer.Option(help="Requests per client")] = 10,
    url: Annotated[
        str | None, typer.Option(help="A running `ami-agent serve` (default: start one on loopback)")
    ] = None,
    backend: Backend = "auto",
):
    """Concurrent clients against the OpenAI-compatible server: errors, mixed-up threads, latency."""
    import socket
    import threading

    import uvicorn

    from ami_agent.server import create_app
    from ami_agent.services import blocksworld
    from eval.load import run_load

    server = None
    if url is None:
        a = temporary_agent(backend)
        a.warm()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(a), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
    d, vb = blocksworld()
    err.print(f"{clients} clients x {requests} requests against {url} ...")
    t0 = time.perf_counter()
    total = clients * requests
    res = run_load(
        url,
        d,
        vb,
        clients,
        requests,
        progress=lambda n, e, m: _progress(
            n, total, f"errors {e}, wrong plans {m}, {time.perf_counter() - t0:.0f}s"
        ),
    )
    err.print()
    out.print(json.dumps(res.summary() | {"wall_seconds": round(time.perf_counter() - t0, 1)}))
    if server:
        server.should_exit = True


@bench_app.command("guardrails")
def bench_guardrails_cmd(
    suite: Annotated[
        str, typer.Option(help="Suite whose queries get one stated constraint each")
    ] = "planbench:blocksworld",
    limit: Limit = 50,
    backend: Backend = "auto",
    planbench_dir: PlanbenchDir = None,
    out_path: OutRecords = None,
):
    """Each query plus one constraint in words ("Never put the red block on the table."); the simulator checks
    every returned plan against it, and decides by exhaustive search whether the goal could be reached at all."""
    from eval.agent_bench import judge_guardrail, suite_cases
    from eval.guardrails import guardrail_cases, guardrail_summary
    from eval.suites import load_suite
    from planner.worlds.nl import NLConfig, Verbalizer

    cases, d = suite_cases(suite, planbench_dir, limit)
    if not cases:
        raise UserError(f"suite {suite} has no natural-language queries")
    nl = load_suite(suite, planbench_dir, 1)[0].nl_config_path
    vb = Verbalizer(d, NLConfig.load(nl) if nl else None)
    err.print(f"drawing constraints and judging feasibility for {len(cases)} problems ...")
    gcases = guardrail_cases(cases, d, vb, seed=0)
    a = temporary_agent(backend)
    a.warm()
    rows = []
    try:
        for k, c in enumerate(gcases, start=1):
            t0 = time.perf_counter()
            res = a.ask(c.text, thread=f"guard-{k}")
            rows.append(judge_guardrail(d, c, res, time.perf_counter() - t0))
            returned = [r for r in rows if r["status"] == "solved"]
            honoured = sum(bool(r["honoured"]) for r in returned)
            _progress(
                k,
                len(gcases),
                f"returned {len(returned)}, honoured {honoured}  last {c.name} {res['status']}",
            )
    finally:
        a.close()
    err.print()
    _write_records(out_path, rows)
    out.print(json.dumps({"suite": suite, **guardrail_summary(rows), "backend": backend}))


Questions = Annotated[
    Path | None,
    typer.Option(
        "--questions",
        help="JSONL file of written state questions (default: eval/data/state_questions.jsonl, held out)",
    ),
]


@bench_app.command("states")
def bench_states_cmd(
    limit: Limit = None, backend: Backend = "auto", out_path: OutRecords = None, questions: Questions = None
):
    """Follow-up questions about a plan's states (eval/data/state_questions.jsonl, written apart), each after a
    planning request in a thread of its own; the simulator's states judge the answers."""
    from ami_agent.services import blocksworld
    from eval.state_questions import DATA, judge, load_cases

    if questions is not None and not questions.is_file():
        raise UserError(
            f"no questions file at {questions}: give a JSONL file like eval/data/state_questions.jsonl"
        )
    d, vb = blocksworld()

    def answer(a, c) -> dict:
        first = a.ask(c.request, thread=f"states-{c.id}")
        t0 = time.perf_counter()
        res = a.ask(c.question, thread=f"states-{c.id}")
        steps = len((first.get("plan_record") or {}).get("plan") or [])
        return judge(d, vb, c, res, steps) | {
            "plan_status": first["status"],
            "seconds": round(time.perf_counter() - t0, 3),
        }

    rows = _judged_threads(backend, load_cases(d, vb, questions or DATA, limit=limit), out_path, answer)
    out.print(
        json.dumps(
            {
                "questions": len(rows),
                "right": sum(r["right"] for r in rows),
                "by_kind": _by(rows, "kind", "right"),
                "by_style": _by(rows, "style", "right"),
                "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2) if rows else None,
                "backend": backend,
            }
        )
    )


@bench_app.command("logistics")
def bench_logistics_cmd(
    limit: Limit = None,
    backend: Backend = "auto",
    out_path: OutRecords = None,
    requests: Annotated[
        Path | None,
        typer.Option(
            help="JSONL file of written logistics requests (default: the held-out eval/data/free_logistics_requests"
            ".jsonl; eval/data/free_logistics_dev.jsonl is the set the reader was developed on)"
        ),
    ] = None,
    end_to_end: Annotated[
        bool,
        typer.Option("--end-to-end", help="Also ask the agent each request; the simulator judges its plan"),
    ] = False,
):
    """Logistics requests in people's own words (written apart from the reader): how many are read exactly (every
    fact and the goal) and, with --end-to-end, answered with a valid plan."""
    from ami_agent.perceive import Reader, perceive
    from ami_agent.services import packaged_worlds
    from eval.free_logistics import REQUESTS, judge_answer, judge_reading, load_cases

    path = requests or REQUESTS
    if not path.is_file():
        raise UserError(f"no requests file at {path}: give a JSONL file like {REQUESTS.name}")
    worlds = [w for w in packaged_worlds() if w[0].name == "logistics-strips"]
    if not worlds:
        raise UserError("no packaged logistics world (ami_agent/worlds/logistics.pddl with its checkpoint)")
    d, vb = worlds[0]
    reader = Reader(vb)
    cases = load_cases(path, limit)
    rows = []
    for c in cases:
        t0 = time.perf_counter()
        p = perceive(c.text, reader, None)
        rows.append(
            judge_reading(c, vb, p.kind, p.init, p.goal, p.question)
            | {"read_seconds": round(time.perf_counter() - t0, 4)}
        )
    if end_to_end:
        a = temporary_agent(backend)
        a.warm()
        try:
            for k, (c, row) in enumerate(zip(cases, rows), start=1):
                t0 = time.perf_counter()
                res = a.ask(c.text, thread=f"lg-{c.id}")
                row.update(judge_answer(c, d, vb, res) | {"seconds": round(time.perf_counter() - t0, 3)})
                _progress(
                    k,
                    len(cases),
                    f"right {sum(r['right'] for r in rows[:k])}/{k}  last {c.id} {res['status']}",
                )
        finally:
            a.close()
        err.print()
    _write_records(out_path, rows)
    summary = _free_summary(rows, "exact") | {
        "median_read_seconds": round(statistics.median(r["read_seconds"] for r in rows), 4) if rows else None
    }
    if end_to_end:
        summary |= {
            "right": sum(r["right"] for r in rows),
            "no_plan_to_reachable": sum(r["no_plan_to_reachable"] for r in rows),
            "median_seconds": round(statistics.median(r["seconds"] for r in rows), 2) if rows else None,
        }
    out.print(json.dumps(summary))
