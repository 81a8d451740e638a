"""The command tree, the consoles, the options the commands share, and small helpers.

Commands import the heavy libraries (torch, transformers, vLLM) inside their bodies: `ami-agent world check` starts
in well under a second instead of the 3 s that torch and transformers take to import (vLLM alone: 4.9 s, measured
on 2 CPU cores)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
train_app = typer.Typer(
    no_args_is_help=True, help="Train the agent's models (the defaults are the committed recipes)."
)
decoder_app = typer.Typer(no_args_is_help=True, help="The decoder: latent plan -> text (LoRA adapter, vLLM).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks.")
for sub, name in (
    (model_app, "model"),
    (world_app, "world"),
    (train_app, "train"),
    (decoder_app, "decoder"),
    (bench_app, "bench"),
):
    app.add_typer(sub, name=name)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class UserError(Exception):
    """A failure to report as one line, with what to do."""


# ---- options shared by several commands (one meaning each) ---------------------------------------------------------
PlanbenchDir = Annotated[
    Path | None,
    typer.Option(
        help="PlanBench folder (instances/, configs/, results/); default ../shared/benchmarks/planbench"
    ),
]
Suite = Annotated[
    str | None, typer.Option(help="A suite, e.g. planbench:blocksworld (`ami-agent suites` lists them)")
]
Suites = Annotated[
    list[str] | None, typer.Option("--suite", help="A suite, e.g. planbench:blocksworld (repeatable)")
]
Domain = Annotated[Path | None, typer.Option(help="PDDL domain file")]
Problem = Annotated[Path | None, typer.Option(help="PDDL problem file")]
Instance = Annotated[str | None, typer.Option(help="With --suite: an instance's file name or number")]
Instances = Annotated[Path | None, typer.Option(help="With --domain: a folder of PDDL problems")]
NLConfigOpt = Annotated[
    Path | None, typer.Option("--nl-config", help="PlanBench-style YAML for the world's English")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]
Limit = Annotated[int | None, typer.Option(help="Only the first N problems")]
OutFile = Annotated[Path | None, typer.Option("--out", help="Write the results here")]
OutDir = Annotated[Path | None, typer.Option("--out", help="Output folder (default: the committed one)")]
Minutes = Annotated[float | None, typer.Option(help="Wall-clock budget in minutes (default: the recipe's)")]
Worlds = Annotated[
    list[str] | None,
    typer.Option("--world", help="A world: planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)"),
]
Backend = Annotated[
    str,
    typer.Option(help="auto (vllm when installed, else transformers) | vllm | transformers | vllm-server"),
]
Url = Annotated[str | None, typer.Option(help="vLLM server URL (--backend vllm-server)")]
Memory = Annotated[Path | None, typer.Option(help="SQLite file of the conversations (default: the cache)")]
Thread = Annotated[str | None, typer.Option(help="Conversation id (its state is kept in SQLite)")]
DecoderDir = Annotated[Path | None, typer.Option(help="Trained decoder folder (default checkpoints/decoder)")]
RecordMetrics = Annotated[bool, typer.Option(help="Store the summary in the model's JSON record")]
Host = Annotated[str, typer.Option(help="Bind address (loopback by default)")]


# ---- helpers ----------------------------------------------------------------------------------------------------
def load_world(domain, problem, suite, instance, planbench_dir, nl_config):
    """(Domain, Problem, English config path, suite instance or None) from files or from a suite's instance."""
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
    return d, load_problem(problem, d), nl_config, inst


def verbalizer(domain, nl_config: Path | None):
    from planner.worlds.nl import NLConfig, Verbalizer

    return Verbalizer(domain, NLConfig.load(nl_config) if nl_config else None)


def default_checkpoint(domain) -> Path:
    return CHECKPOINTS / f"{domain.name}.pt"


def problem_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of PDDL problems")
    files = sorted(
        folder.glob("*.pddl"),
        key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)],
    )
    if not files:
        raise UserError(f"{folder}: no .pddl files")
    return files


def decoder(backend: str, url: str | None, decoder_dir: Path | None):
    from decoder.api import DEFAULT_DIR, Decoder
    from decoder.backends import make_backend
    from decoder.base_model import resolve_base_model

    mdir = Path(resolve_base_model(None))
    d = Path(decoder_dir or DEFAULT_DIR)
    if not (d / "projector.pt").exists():
        raise UserError(
            f"{d}: no trained decoder there (projector.pt missing). Train one: ami-agent train decoder"
        )
    err.print(f"starting the {backend} decoder backend ...")
    return Decoder(make_backend(backend, mdir, url), mdir, d)


def planner_for(cache: dict, time_limit: float = 10.0):
    """domain -> (world name, Planner on checkpoints/DOMAIN.pt), loaded once."""

    def get(d):
        if d.name not in cache:
            from planner.api import Planner

            ckpt = default_checkpoint(d)
            if not ckpt.exists():
                raise UserError(
                    f"no world model for domain '{d.name}' at {ckpt}: train one (ami-agent train world-model)"
                )
            cache[d.name] = (d.name, Planner.load(ckpt, {"time_limit": time_limit}))
        return cache[d.name]

    return get


def agent(backend: str, url: str | None, memory: Path | None):
    from ami_agent.agent import Agent
    from ami_agent.services import AgentConfig

    return Agent(AgentConfig(backend=backend, url=url, memory=memory))


def temporary_agent(backend: str):
    """An agent whose conversations go to a fresh temporary SQLite file (benchmarks)."""
    import tempfile

    return agent(backend, None, Path(tempfile.mkdtemp()) / "bench.sqlite")


def this_command() -> str:
    """The command line that is running, for a record's "command" field ("" when not run as ami-agent)."""
    return "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""


def store_benchmark(record_path: Path, key: str, summary: dict) -> None:
    """Adds a measured summary, with the command that measured it, to a model's JSON record."""
    import json

    rec = json.loads(record_path.read_text()) if record_path.exists() else {}
    rec.setdefault("benchmarks", {})[key] = {**summary, "command": this_command()}
    record_path.write_text(json.dumps(rec, indent=1) + "\n")
