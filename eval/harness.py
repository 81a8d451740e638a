"""`ami-agent eval`: systems x suites -> plan records per system, summary.json, report.md and plots.

Systems: `ami` (the whole agent, from the natural-language query to text; the plan is read from the text),
`ami-planner` (the latent planner on the PDDL problem), `ar-zero-shot` (the base model on the zero-shot query,
greedy), `ar-sft` / `ar-sft-sc` / `ar-sft-verify` (the base model with a LoRA adapter fine-tuned to write plans:
greedy / k samples with a majority vote / up to 16 samples, the first the simulator accepts), `oracle` (optimal: A*
for blocksworld-like problems, BFS otherwise). Every plan is judged by the validator; every row carries wall and CPU
seconds and tokens. Runs are resumable: instances already written to DIR/<system>.jsonl are skipped.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import psutil

from decoder.backends import Request, Sampling
from eval.cases import Case, zero_shot_query
from eval.rows import Row
from eval.scaling import load_scaling
from eval.suites import load_suite, resolve_planbench_dir
from planner.api import Planner
from planner.record import PlanRecord
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve_optimal
from planner.worlds.pddl import load_domain, load_problem
from planner.worlds.plans import parse_plan_text, validate


def load_cases(
    spec: str, planbench_dir=None, limit: int | None = None, cache_dir: Path | None = None
) -> list[Case]:
    """planbench:SUITE, or a generated scaling suite (gen:blocksworld:K=12, gen:mystery:N=15: eval/scaling.py),
    whose problems are kept in cache_dir when given."""
    if spec.startswith("planbench:"):
        out, cache = [], {}
        for inst in load_suite(spec, planbench_dir, limit):
            if inst.domain_path not in cache:
                d = load_domain(inst.domain_path)
                cache[inst.domain_path] = (
                    d,
                    Verbalizer(d, NLConfig.load(inst.nl_config_path) if inst.nl_config_path else None),
                )
            d, vb = cache[inst.domain_path]
            p = load_problem(inst.problem_path, d)
            out.append(
                Case(
                    spec,
                    inst.name,
                    d,
                    p,
                    vb,
                    inst.query or zero_shot_query(vb, p),
                    inst.optimal_length,
                    inst.solvable,
                )
            )
        return out
    if spec.startswith("gen:"):
        return load_scaling(spec, planbench_dir, limit, cache_dir)
    raise ValueError(f"unknown suite {spec!r}: planbench:NAME, gen:blocksworld:K=12 or gen:mystery:N=15")


# ---- systems ------------------------------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (an engine in a subprocess) so far."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _record(case: Case, system: str, status: str, plan_steps, seconds: float, cpu: float = 0.0, **kw) -> dict:
    """The evaluation row (eval/rows.py) of one answer, its plan judged by the validator."""
    valid = validate(case.domain, case.problem, list(plan_steps)).valid if status == "solved" else None
    record = PlanRecord(
        case.name,
        system,
        status,
        ["(" + " ".join(s) + ")" for s in plan_steps],
        kw.get("reason", ""),
        seconds,
        kw.get("tokens_in", 0),
        kw.get("tokens_out", 0),
        kw.get("expansions", 0),
        kw.get("energies", {}),
    )
    return Row(record, bool(valid), case.optimal_length, case.suite, case.solvable, cpu).to_dict()


def run_oracle(cases: list[Case], time_limit: float = 60.0):
    """The optimal planner: A* over block moves for blocksworld-like problems (hand empty at the start, goals of
    `on`/`ontable` facts), breadth-first search otherwise."""

    for c in cases:
        t0, c0 = time.perf_counter(), cpu_seconds()
        r = solve_optimal(c.domain, c.problem, time_limit=time_limit, blocks_expansions=10_000_000)
        steps = parse_plan_text("\n".join(r.plan), c.domain, c.problem) if r.status == "solved" else []
        yield _record(
            c,
            "oracle",
            r.status,
            steps,
            time.perf_counter() - t0,
            cpu_seconds() - c0,
            reason=r.reason,
            expansions=r.expansions,
        )


def run_planner(cases: list[Case], time_limit: float = 10.0):

    checkpoints = Path(__file__).resolve().parent.parent / "checkpoints"
    planners: dict[str, Planner] = {}
    for c in cases:
        name = c.domain.name
        if name not in planners:
            path = checkpoints / f"{name}.pt"
            if not path.exists():
                raise FileNotFoundError(f"no world model for domain '{name}' at {path}: train one first")
            planners[name] = Planner.load(path, {"time_limit": time_limit})
        t0, c0 = time.perf_counter(), cpu_seconds()
        r = planners[name].plan(list(c.problem.objects), c.problem.init, c.problem.goal)
        yield _record(
            c,
            "ami-planner",
            r.status,
            r.actions,
            time.perf_counter() - t0,
            cpu_seconds() - c0,
            reason=r.reason,
            expansions=r.expansions,
            energies=r.energies,
        )


def run_agent(cases: list[Case], agent, concurrency: int = 1):
    """The whole agent on each case's natural-language query. concurrency > 1 asks several queries at once (one
    conversation thread each), as concurrent users would: the decoder backend batches their decodes. Records
    arrive in completion order; each carries its own wall time; CPU time is exact at concurrency 1 and, above it,
    the CPU time since the previous answer finished goes to the answers that finish (shared among them when several
    do): a rough split per answer, exact in total."""

    # a suite of another world (mystery blocksworld): the agent reads it with that world's English
    for c in cases:
        agent.add_world(c.domain, c.verbalizer)

    def one(k: int, c: Case) -> tuple[Case, dict, float]:
        t0 = time.perf_counter()
        res = agent.ask(c.query, thread=f"eval-{c.suite}-{c.name}-{k}")
        return c, res, time.perf_counter() - t0

    if concurrency <= 1:
        for k, c in enumerate(cases):
            c0 = cpu_seconds()
            c, res, dt = one(k, c)
            yield _agent_record(c, res, dt, cpu_seconds() - c0)
        return
    with ThreadPoolExecutor(concurrency) as pool:
        pending = iter(enumerate(cases))
        running = set()
        for k, c in pending:
            running.add(pool.submit(one, k, c))
            if len(running) >= concurrency:
                break
        mark = cpu_seconds()
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            now = cpu_seconds()
            share, mark = (now - mark) / len(done), now
            for f in done:
                yield _agent_record(*f.result(), share)
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(one, *nxt))


def _agent_record(c: Case, res: dict, dt: float, cpu: float) -> dict:
    rec = res.get("plan_record") or {}
    steps = c.verbalizer.read_plan(
        res["reply"].split("[PLAN]", 1)[-1], list(c.problem.objects), facts=c.problem.init
    )
    status = (
        "solved"
        if res["status"] == "solved" and steps
        else ("no_plan" if res["status"] == "no_plan" else res["status"])
    )
    if status not in ("solved", "no_plan", "error"):
        status = "error"
    return _record(
        c,
        "ami",
        status,
        steps if status == "solved" else [],
        dt,
        cpu,
        reason="" if status == "solved" else (rec.get("reason") or res["reply"][:300]),
        tokens_in=rec.get("tokens_in", 0),
        tokens_out=rec.get("tokens_out", 0),
        expansions=rec.get("expansions", 0),
        energies=rec.get("energies", {}),
    )


VERIFY_ROUNDS = (1, 3, 4, 8)  # ar-sft-verify's samples per round: greedy first, then 15 at temperature 0.7


def run_llm_by_world(cases: list[Case], get_llm, system: str, adapter_for=None, **kw):
    """`run_llm` world by world, each world's cases with its adapter (`adapter_for(domain name)`, loaded when its
    first case comes; None: the base model). get_llm() -> (backend, tokenizer). Records come back in the worlds'
    order of first appearance."""
    by_world: dict[str, list[Case]] = {}
    for c in cases:
        by_world.setdefault(c.domain.name, []).append(c)
    for world, part in by_world.items():
        adapter = adapter_for(world) if adapter_for else None
        yield from run_llm(part, *get_llm(), system, adapter, **kw)


def answer_tokens(c: Case) -> int:
    """The tokens an answer may take: 600 (room for any plan of up to 15 blocks), or 40 a problem object where more
    (a logistics step is ~17 tokens, and 25 objects' plans reach 40 steps)."""
    return max(600, 40 * len(c.problem.objects))


def run_llm(
    cases: list[Case],
    backend,
    tokenizer,
    system: str,
    adapter: str | None,
    samples: int = 1,
    max_tokens: int | None = None,
    chunk: int = 32,
    verify: bool = False,
):
    """The base model (with or without an adapter) answers each query; the plan is read from its text, of at most
    max_tokens (default `answer_tokens`: room for plans of logistics' sizes and of many blocks).
    samples > 1: that many samples at temperature 0.7, the majority plan (self-consistency). verify: up to 16
    answers (VERIFY_ROUNDS), the first one the simulator's validator accepts is returned (the LRM-Modulo shape;
    `ami` never calls the simulator); a problem stops sampling once one is accepted. A chunk's time is shared
    among its problems by the tokens each generated."""

    def ids(c: Case) -> list[int]:
        return list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": c.query}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        )

    def plan_of(c: Case, o) -> tuple:
        return tuple(c.verbalizer.read_plan(o.text, list(c.problem.objects), facts=c.problem.init))

    for i in range(0, len(cases), chunk):
        part = cases[i : i + chunk]
        reqs = [Request(prompt_ids=ids(c)) for c in part]
        budget = max_tokens or max(answer_tokens(c) for c in part)
        answers: list[list] = [[] for _ in part]
        t0, c0 = time.perf_counter(), cpu_seconds()
        if verify:
            accepted: list[tuple | None] = [None] * len(part)
            seed = 0
            for k, n in enumerate(VERIFY_ROUNDS):
                todo = [j for j in range(len(part)) if accepted[j] is None]
                if not todo:
                    break
                for _ in range(n):
                    sampling = (
                        Sampling(max_tokens=budget)
                        if k == 0
                        else Sampling(max_tokens=budget, temperature=0.7, seed=seed)
                    )
                    seed += 1
                    outs = backend.generate([reqs[j] for j in todo], adapter, sampling)
                    for j, o in zip(todo, outs):
                        answers[j].append(o)
                        p = plan_of(part[j], o)
                        if p and validate(part[j].domain, part[j].problem, list(p)).valid:
                            accepted[j] = p
                    todo = [j for j in todo if accepted[j] is None]
                    if not todo:
                        break
            chosen = accepted
        elif samples == 1:
            for j, o in enumerate(backend.generate(reqs, adapter, Sampling(max_tokens=budget))):
                answers[j].append(o)
            chosen = [plan_of(c, a[0]) or None for c, a in zip(part, answers)]
        else:
            for s in range(samples):
                outs = backend.generate(reqs, adapter, Sampling(max_tokens=budget, temperature=0.7, seed=s))
                for j, o in enumerate(outs):
                    answers[j].append(o)
            chosen = []
            for c, a in zip(part, answers):
                votes = Counter(p for p in (plan_of(c, o) for o in a) if p)
                chosen.append(votes.most_common(1)[0][0] if votes else None)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        weights = [1 + sum(o.tokens_out for o in a) for a in answers]
        for c, a, steps, w in zip(part, answers, chosen, weights):
            share = w / sum(weights)
            reason = ""
            if not steps:
                reason = f"none of {len(a)} answers passed the validator" if verify else "no plan in the text"
            yield _record(
                c,
                system,
                "solved" if steps else "no_plan",
                list(steps or []),
                wall * share,
                cpu * share,
                reason=reason,
                tokens_in=sum(o.tokens_in for o in a),
                tokens_out=sum(o.tokens_out for o in a),
            )


# ---- the run ------------------------------------------------------------------------------------------------------
def _done(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
            out.add((r["suite"], r["instance"]))
        except (ValueError, KeyError):
            continue
    return out


def run_system(system: str, cases: list[Case], out_dir: Path, make, log=None) -> int:
    """Runs one system on the cases not yet in out_dir/<system>.jsonl; returns how many were run."""
    path = out_dir / f"{system}.jsonl"
    done = _done(path)
    todo = [c for c in cases if (c.suite, c.name) not in done]
    if not todo:
        return 0
    t0 = time.perf_counter()
    n = ok = 0
    with path.open("a") as f:
        for rec in make(todo):
            f.write(json.dumps(rec) + "\n")
            f.flush()
            n += 1
            ok += rec["valid"]
            if log:
                el = time.perf_counter() - t0
                log(
                    f"\r{system}: [{n}/{len(todo)}] valid {ok}  {el:.0f}s, eta {el / n * (len(todo) - n):.0f}s   ",
                    end="",
                )
    if log:
        log("")
    return n


def load_records(out_dir: Path, systems) -> list[dict]:
    rows = []
    for s in systems:
        p = out_dir / f"{s}.jsonl"
        if p.exists():
            rows += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return rows


def summarize(rows: list[dict]) -> dict:
    by = defaultdict(list)
    for r in rows:
        by[(r["suite"], r["system"])].append(r)
    out = {}
    for (suite, system), rs in sorted(by.items()):
        unsolvable = all(r.get("solvable") is False for r in rs)
        ok = sum((r["status"] == "no_plan") if unsolvable else r["valid"] for r in rs)
        long = [r for r in rs if (r.get("optimal_length") or 0) >= 8]
        out.setdefault(suite, {})[system] = {
            "problems": len(rs),
            "success": ok,
            "success_rate": round(ok / len(rs), 4),
            "metric": "no_plan" if unsolvable else "valid plan",
            "invalid_reported_solved": sum(r["status"] == "solved" and not r["valid"] for r in rs),
            "median_seconds": round(statistics.median(r["seconds"] for r in rs), 3),
            "total_seconds": round(sum(r["seconds"] for r in rs), 1),
            "cpu_seconds": round(sum(r.get("cpu_seconds", 0.0) for r in rs), 1),
            "tokens_in": sum(r["tokens_in"] for r in rs),
            "tokens_out": sum(r["tokens_out"] for r in rs),
            "success_rate_8plus_steps": round(sum(r["valid"] for r in long) / len(long), 4) if long else None,
            "problems_8plus_steps": len(long),
            "success_8plus_steps": sum(r["valid"] for r in long),
        }
    return out


def frontier_rows(planbench_dir, suites) -> dict[str, dict[str, float]]:
    """PlanBench's published zero-shot results in its results folder: suite -> engine -> success rate."""

    try:
        root = resolve_planbench_dir(planbench_dir)
    except Exception:
        return {}
    out: dict[str, dict[str, float]] = {}
    for s in suites:
        if not s.startswith("planbench:"):
            continue
        name = s.split(":", 1)[1]
        for f in sorted((root / "results" / name).glob("*/task_1_plan_generation_zero_shot*.json")):
            try:
                d = json.loads(f.read_text())
                inst = d["instances"]
                out.setdefault(s, {})[f"{d.get('engine', f.parent.name)} (PlanBench, zero-shot)"] = round(
                    sum(bool(i.get("llm_correct")) for i in inst) / len(inst), 4
                )
            except (ValueError, KeyError, ZeroDivisionError):
                continue
    return out


def _table(title: str, systems: list[str], summary: dict, cell) -> list[str]:
    """A suite x system markdown table; cell(per-system summary) -> text ("-" where a system has no record)."""
    lines = ["", title, "", "| suite | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for suite, per in summary.items():
        lines.append(f"| {suite} | " + " | ".join(cell(per[s]) if s in per else "-" for s in systems) + " |")
    return lines


def write_report(out_dir: Path, summary: dict, frontier: dict, rows: list[dict]) -> None:
    systems = sorted({s for v in summary.values() for s in v})
    lines = ["# Evaluation report"]
    lines += _table(
        "Success: a valid plan (unsolvable suites: `no_plan`). Every plan is judged by the validator.",
        systems,
        summary,
        lambda v: f"{v['success']}/{v['problems']} ({v['success_rate']:.1%})",
    )
    if frontier:
        lines += [
            "",
            "Reference (PlanBench's published results, same problems, zero-shot):",
            "",
            "| suite | model | success |",
            "|---|---|---|",
        ]
        for suite, engines in frontier.items():
            for e, rate in engines.items():
                lines.append(f"| {suite} | {e} | {rate:.1%} |")
    lines += _table("Median seconds per problem:", systems, summary, lambda v: f"{v['median_seconds']:.2f}")
    lines += _table(
        "Problems of >= 8 optimal steps (success / problems):",
        systems,
        summary,
        lambda v: (
            f"{v['success_8plus_steps']}/{v['problems_8plus_steps']}" if v["problems_8plus_steps"] else "-"
        ),
    )
    lines += _table(
        "Language-model compute, tokens per problem (prompt in / generated out; the planner's own work is in the "
        "records' `expansions`):",
        systems,
        summary,
        lambda v: f"{v['tokens_in'] / v['problems']:.0f} / {v['tokens_out'] / v['problems']:.0f}",
    )
    lines += [
        "",
        "![success by optimal length](success_by_length.png)",
        "",
        "![time by optimal length](time_by_length.png)",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))
    plot(rows, out_dir)


def plot(rows: list[dict], out_dir: Path) -> None:

    matplotlib.use("Agg")

    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("optimal_length") and r.get("solvable") is not False:
            by[r["system"]][r["optimal_length"]].append(r)
    for what, fname, ylabel in (
        ("valid", "success_by_length.png", "valid plans"),
        ("seconds", "time_by_length.png", "median seconds"),
    ):
        fig, ax = plt.subplots(figsize=(9, 4))
        styles = ["o-", "s--", "^-.", "D:", "v-", "x--"]
        for k, (system, per) in enumerate(sorted(by.items())):
            xs = sorted(per)
            if what == "valid":
                ys = [sum(r["valid"] for r in per[x]) / len(per[x]) for x in xs]
            else:  # log scale: the oracle's sub-millisecond times are drawn at 1 ms
                ys = [max(1e-3, statistics.median(r["seconds"] for r in per[x])) for x in xs]
            n = sum(len(v) for v in per.values())
            # systems that coincide (several at 100%) stay visible: thicker lines and bigger markers first
            ax.plot(
                xs,
                ys,
                styles[k % len(styles)],
                lw=3.2 - 0.4 * k,
                ms=9 - k,
                alpha=0.85,
                label=f"{system} ({n} problems)",
            )
        # how many problems stand behind each point: a length with one problem swings from 0 to 1
        ticks = sorted({x for per in by.values() for x in per})
        counts = {x: max(len(per.get(x, [])) for per in by.values()) for x in ticks}
        ax.set_xticks(ticks, [f"{x}\nn={counts[x]}" for x in ticks], fontsize=8)
        ax.set_xlabel("optimal plan length (steps); n: problems of that length")
        ax.set_ylabel(ylabel)
        if what == "seconds":
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: lines sit at 0 and 1
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
