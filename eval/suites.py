"""Evaluation suites: PlanBench (read in its upstream layout through a path option; never copied, never trained on)
and generated ones. An instance gives the domain, the problem, PlanBench's natural-language query where a results
file has one, and the ground-truth plan where known."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from decoder.data import World
from planner.worlds.errors import WorldError
from planner.worlds.pddl import load_domain

PLANBENCH_ENV = "AMI_PLANBENCH_DIR"


@dataclass(frozen=True)
class SuiteSpec:
    config: str  # configs/<config>.yaml: instance dir, domain file, range
    nl_config: str  # configs/<nl_config>.yaml: the English templates
    ground_truth: str  # "info" (instances/.../info.json), "results" (the results file), "unsolvable"
    all_files: bool = False  # every instance file in the folder, not the config's start..end


PLANBENCH_SUITES: dict[str, SuiteSpec] = {
    "blocksworld": SuiteSpec("blocksworld", "blocksworld", "info"),
    "blocksworld_3": SuiteSpec("blocksworld_3", "blocksworld_3", "results"),
    "mystery_blocksworld": SuiteSpec("mystery_blocksworld", "mystery_blocksworld", "results"),
    "mystery_blocksworld_3": SuiteSpec("mystery_blocksworld_3", "mystery_blocksworld_3", "results"),
    "blocksworld_hard": SuiteSpec("blocksworld_hard", "blocksworld", "info"),
    "logistics": SuiteSpec("logistics", "logistics", "results", all_files=True),
    "unsolvable_blocksworld": SuiteSpec("unsolvable_blocksworld", "unsolvable_blocksworld", "unsolvable"),
}


@dataclass(frozen=True)
class Instance:
    suite: str
    name: str  # "instance-12.pddl"
    index: int
    domain_path: Path
    problem_path: Path
    nl_config_path: Path | None
    query: str | None  # PlanBench's zero-shot natural-language query
    ground_truth_plan: tuple[str, ...] | None  # PDDL labels; None when unknown
    solvable: bool | None  # False for the unsolvable suite

    @property
    def optimal_length(self) -> int | None:
        return None if self.ground_truth_plan is None else len(self.ground_truth_plan)


def default_planbench_dir() -> Path | None:
    env = os.environ.get(PLANBENCH_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here):
        cand = base.parent / "shared" / "benchmarks" / "planbench"
        if cand.is_dir():
            return cand
    return None


def resolve_planbench_dir(path: str | Path | None) -> Path:
    """The folder holding instances/, configs/, results/; a PlanBench repository checkout works too."""
    if path is None:
        path = default_planbench_dir()
        if path is None:
            raise WorldError(
                "no PlanBench folder found",
                hint=f"Pass --planbench-dir DIR (a PlanBench checkout or "
                f"its llm_planning_analysis/ folder), or set {PLANBENCH_ENV}",
            )
    p = Path(path).expanduser()
    for cand in (p, p / "llm_planning_analysis", p / "plan-bench"):
        if (cand / "instances").is_dir() and (cand / "configs").is_dir():
            return cand
    raise WorldError(
        "not a PlanBench folder: expected instances/ and configs/ inside",
        source=str(p),
        hint="Pass the llm_planning_analysis/ folder of a PlanBench checkout",
    )


def _results_file(root: Path, suite: str) -> Path | None:
    folder = root / "results" / suite
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*/task_1_plan_generation_zero_shot*.json"))
    plain = [f for f in files if f.name == "task_1_plan_generation_zero_shot.json"]
    return (plain or files or [None])[0]


@lru_cache(maxsize=32)
def _results(path: Path) -> dict[int, dict]:
    data = json.loads(path.read_text())
    return {int(i["instance_id"]): i for i in data.get("instances", [])}


def _plan_lines(text: str) -> tuple[str, ...]:
    return tuple(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(";"))


def suite_names() -> list[str]:
    return [f"planbench:{s}" for s in PLANBENCH_SUITES]


def load_suite(
    name: str, planbench_dir: str | Path | None = None, limit: int | None = None
) -> list[Instance]:
    """`planbench:blocksworld`, ... (see suite_names())."""
    kind, _, suite = name.partition(":")
    if kind != "planbench" or suite not in PLANBENCH_SUITES:
        raise WorldError(f"unknown suite '{name}'", hint="Known suites: " + ", ".join(suite_names()))
    spec = PLANBENCH_SUITES[suite]
    root = resolve_planbench_dir(planbench_dir)
    cfg_path = root / "configs" / f"{spec.config}.yaml"
    if not cfg_path.exists():
        raise WorldError("this PlanBench folder lacks the suite's config", source=str(cfg_path))
    cfg = yaml.safe_load(cfg_path.read_text())
    inst_dir = root / "instances" / cfg["instance_dir"]
    domain = root / "instances" / cfg["domain_file"]
    template = cfg.get("instances_template", "instance-{}.pddl")
    if spec.all_files:
        pat = re.compile("^" + re.escape(template).replace(r"\{\}", r"(\d+)") + "$")
        idx = sorted(int(m.group(1)) for f in inst_dir.iterdir() if (m := pat.match(f.name)))
    else:
        idx = list(range(int(cfg.get("start", 1)), int(cfg.get("end", cfg.get("n_instances", 0))) + 1))
    nl = root / "configs" / f"{spec.nl_config}.yaml"
    results_path = _results_file(root, suite)
    results = _results(results_path) if results_path else {}
    info = {}
    if spec.ground_truth == "info":
        info_path = inst_dir.parent / "info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
    out = []
    for i in idx[:limit] if limit else idx:
        fname = template.format(i)
        r = results.get(i, {})
        query = r.get("query") if results_path and "pddl" not in results_path.name else None
        gt: tuple[str, ...] | None = None
        solvable: bool | None = True
        if spec.ground_truth == "unsolvable":
            solvable = False
        elif spec.ground_truth == "info" and fname in info:
            gt = _plan_lines(info[fname]["plan"])
        elif r.get("ground_truth_plan"):
            gt = _plan_lines(r["ground_truth_plan"])
        out.append(
            Instance(
                name, fname, i, domain, inst_dir / fname, nl if nl.exists() else None, query, gt, solvable
            )
        )
    return out


def find_instance(suite: str, instance: str, planbench_dir: str | Path | None = None) -> Instance:
    """An instance by file name ("instance-12.pddl") or number ("12")."""
    for inst in load_suite(suite, planbench_dir):
        if instance in (inst.name, str(inst.index)):
            return inst
    raise WorldError(
        f"suite '{suite}' has no instance '{instance}'",
        hint="Give a file name like instance-12.pddl or its number",
    )


DECODER_WORLDS = [
    "planbench:blocksworld",
    "planbench:mystery_blocksworld",
]  # the decoder's and ar-sft's default
# worlds added to the trained decoder with an adapter of their own (`train_added_world`)
_PACKAGED = Path(__file__).resolve().parent.parent / "ami_agent" / "worlds"
ADDED_DECODER_WORLDS = [f"{_PACKAGED / 'logistics.pddl'},{_PACKAGED / 'logistics.yaml'}"]
CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def world_for(spec: str, planbench_dir: str | Path | None = None):
    """A world to train a decoder (or ar-sft) for: `planbench:SUITE` (the suite's domain and English templates, not
    its instances) or `DOMAIN.pddl[,CONFIG.yaml]`, with its world model checkpoints/DOMAIN.pt."""

    if spec.startswith("planbench:"):
        inst = load_suite(spec, planbench_dir, limit=1)[0]
        domain_path, nl = inst.domain_path, inst.nl_config_path
    else:
        parts = spec.split(",")
        domain_path, nl = Path(parts[0]), (Path(parts[1]) if len(parts) > 1 else None)
    d = load_domain(domain_path)
    ckpt = CHECKPOINTS / f"{d.name}.pt"
    if not ckpt.exists():
        raise WorldError(
            f"no world model for domain '{d.name}' at {ckpt}: train it first with "
            f"`ami-agent train world-model --domain {domain_path}`"
        )
    return World.load(d.name, domain_path, nl, ckpt)
