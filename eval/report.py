"""The scaling report (`ami-agent report`): every system on the scaling suites (eval/scaling.py), as success against
optimal plan length K and against block count N, and what each answer cost in CPU-seconds and generated tokens.
Writes report.md, summary.json and three plots: scaling_k.png, scaling_n.png, cost.png."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from eval.rows import SYSTEMS

AR_SYSTEMS = tuple(s for s in SYSTEMS if s.startswith("ar-"))
LONG_K = 16  # "long plans": the ratio of ami to the best ar-* system is reported from here
MANY_N = 10  # and from this many blocks
_SUITE = re.compile(r"^gen:(\w+):([KN])=(\d+)$")
STYLE = {  # one look per system in every plot
    "ami": ("o-", "C0"),
    "ami-planner": ("s--", "C1"),
    "ar-zero-shot": ("x:", "C7"),
    "ar-sft": ("^-", "C2"),
    "ar-sft-sc": ("v-.", "C4"),
    "ar-sft-verify": ("D-", "C3"),
    "oracle": ("*:", "k"),
}


def _key(suite: str) -> tuple[str, str, int] | None:
    m = _SUITE.match(suite)
    return (m.group(1), m.group(2), int(m.group(3))) if m else None


def tally(rows: list[dict]) -> dict:
    """(world, axis, value) -> system -> {problems, valid, invalid (a plan given that the validator rejects), cpu,
    tokens_out, seconds}."""
    out: dict = defaultdict(
        lambda: defaultdict(lambda: dict(problems=0, valid=0, invalid=0, cpu=0.0, tokens_out=0, seconds=0.0))
    )
    for r in rows:
        k = _key(r["suite"])
        if k is None:
            continue
        t = out[k][r["system"]]
        t["problems"] += 1
        t["valid"] += bool(r["valid"])
        t["invalid"] += r["status"] == "solved" and not r["valid"]
        t["cpu"] += r.get("cpu_seconds", 0.0)
        t["tokens_out"] += r["tokens_out"]
        t["seconds"] += r["seconds"]
    return out


def _pool(tal: dict, world: str, axis: str, lo: int) -> dict[str, tuple[int, int]]:
    """system -> (valid, problems) over the world's suites of that axis from value lo up."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (w, a, v), per in tal.items():
        if w == world and a == axis and v >= lo:
            for s, t in per.items():
                out[s][0] += t["valid"]
                out[s][1] += t["problems"]
    return {s: (v[0], v[1]) for s, v in out.items()}


def _ratio(a: float | None, b: float | None):
    if a is None or b is None:
        return None
    if b == 0:
        return "inf" if a > 0 else None  # both at 0: no ratio
    return round(a / b, 2)


def _show(ratio) -> str:
    return "no ratio (both 0)" if ratio is None else str(ratio)


def headline(tal: dict) -> dict:
    """Per world: the ratio of ami's success to the best ar-* system's at K >= 16 and at N >= 10, and CPU-seconds
    per solved problem of every system."""
    out: dict = {}
    worlds = sorted({w for w, _, _ in tal})
    for w in worlds:
        h: dict = {}
        for axis, lo in (("K", LONG_K), ("N", MANY_N)):
            pool = _pool(tal, w, axis, lo)
            rate = {s: v / n for s, (v, n) in pool.items() if n}
            ars = {s: r for s, r in rate.items() if s in AR_SYSTEMS}
            best_rate = max(ars.values()) if ars else None
            # the best ar-* system by name only where one solved something; at 0 every ratio above 0 is "inf"
            best = max(ars, key=ars.get) if best_rate else None
            h[f"{axis}>={lo}"] = {
                "success": {s: f"{v}/{n}" for s, (v, n) in pool.items()},
                "best_ar": best or ("none solved any" if ars else None),
                "ami_over_best_ar": _ratio(rate.get("ami"), best_rate),
                "ami_planner_over_best_ar": _ratio(rate.get("ami-planner"), best_rate),
            }
        cost: dict = {}
        for s in SYSTEMS:
            ts = [per[s] for (ww, _, _), per in tal.items() if ww == w and s in per]
            if not ts:
                continue
            n, ok = sum(t["problems"] for t in ts), sum(t["valid"] for t in ts)
            cpu, tok = sum(t["cpu"] for t in ts), sum(t["tokens_out"] for t in ts)
            cost[s] = {
                "problems": n,
                "solved": ok,
                "invalid_plans_given": sum(t["invalid"] for t in ts),
                "cpu_seconds_per_problem": round(cpu / n, 2),
                "cpu_seconds_per_solved": round(cpu / ok, 2) if ok else None,
                "tokens_out_per_problem": round(tok / n, 1),
            }
        h["cost"] = cost
        out[w] = h
    return out


def write(out_dir: Path, rows: list[dict], command: str = "") -> dict:
    tal = tally(rows)
    head = headline(tal)
    systems = [s for s in SYSTEMS if any(s in per for per in tal.values())]
    summary = {
        "suites": {
            f"gen:{w}:{a}={v}": {s: {k: round(x, 2) for k, x in t.items()} for s, t in per.items()}
            for (w, a, v), per in sorted(tal.items())
        },
        "headline": head,
        "command": command,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [
        "# Scaling report",
        "",
        "Generated blocksworld problems (and the same problems in mystery blocksworld's words) by optimal plan "
        "length K and by block count N (`eval/scaling.py`); every plan judged by the simulator's validator. "
        f"`ami` answers from the query's words; the `ar-*` systems are the same base model. Command: `{command}`.",
        "",
        "![success against K](scaling_k.png)",
        "",
        "![success against N](scaling_n.png)",
        "",
        "![CPU-seconds per solved problem](cost.png)",
        "",
    ]
    for w, h in head.items():
        lines += [f"## {w}", ""]
        for part, v in h.items():
            if part == "cost":
                continue
            lines.append(
                f"- {part}: "
                + ", ".join(f"{s} {x}" for s, x in v["success"].items())
                + (
                    f"; over the best ar-* system ({v['best_ar']}): ami {_show(v['ami_over_best_ar'])}, "
                    f"ami-planner {_show(v['ami_planner_over_best_ar'])}"
                    if v["best_ar"]
                    else ""
                )
            )
        lines += [
            "",
            "| system | problems | solved | invalid plans given | CPU-s per problem | CPU-s per solved | tokens out "
            "per problem |",
            "|---|---|---|---|---|---|---|",
        ]
        for s, c in h["cost"].items():
            per_solved = "-" if c["cpu_seconds_per_solved"] is None else f"{c['cpu_seconds_per_solved']:.2f}"
            lines.append(
                f"| {s} | {c['problems']} | {c['solved']} | {c['invalid_plans_given']} | "
                f"{c['cpu_seconds_per_problem']:.2f} | {per_solved} | "
                f"{c['tokens_out_per_problem']:.0f} |"
            )
        lines.append("")
    lines += ["## Every suite (valid / problems)", "", "| suite | " + " | ".join(systems) + " |"]
    lines.append("|---|" + "---|" * len(systems))
    for (w, a, v), per in sorted(tal.items()):
        cells = [f"{per[s]['valid']}/{per[s]['problems']}" if s in per else "-" for s in systems]
        lines.append(f"| gen:{w}:{a}={v} | " + " | ".join(cells) + " |")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    plot(tal, out_dir)
    return summary


def plot(tal: dict, out_dir: Path) -> None:
    matplotlib.use("Agg")
    worlds = sorted({w for w, _, _ in tal})
    for axis, fname, xlabel in (
        ("K", "scaling_k.png", "optimal plan length K (steps)"),
        ("N", "scaling_n.png", "blocks N"),
        ("cost", "cost.png", "optimal plan length K (steps)"),
    ):
        fig, axes = plt.subplots(1, len(worlds), figsize=(6 * len(worlds), 4), squeeze=False, sharey=True)
        for ax, w in zip(axes[0], worlds):
            a = "K" if axis == "cost" else axis
            pts = sorted((v, per) for (ww, aa, v), per in tal.items() if ww == w and aa == a)
            for s in SYSTEMS:
                xs, ys = [], []
                for v, per in pts:
                    t = per.get(s)
                    if not t or not t["problems"]:
                        continue
                    if axis == "cost":
                        if t["valid"]:
                            xs.append(v)
                            ys.append(max(1e-3, t["cpu"] / t["valid"]))  # the oracle's ~0 s drawn at 1 ms
                    else:
                        xs.append(v)
                        ys.append(t["valid"] / t["problems"])
                if xs:
                    style, color = STYLE.get(s, ("o-", None))
                    ax.plot(xs, ys, style, color=color, label=s, lw=1.8, ms=5, alpha=0.9)
            n = max((t["problems"] for _, per in pts for t in per.values()), default=0)
            ax.set_title(f"{w} ({n} problems a point)")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            if axis == "cost":
                ax.set_yscale("log")
            else:
                ax.set_ylim(-0.03, 1.03)
        axes[0][0].set_ylabel("CPU-seconds per solved problem" if axis == "cost" else "valid plans")
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
