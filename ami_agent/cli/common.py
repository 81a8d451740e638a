"""The command tree, the consoles, the options and helpers the commands share."""

from __future__ import annotations

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


CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def default_checkpoint(domain) -> Path:
    return CHECKPOINTS / f"{domain.name}.pt"


def _parse_range(text: str, option: str = "--objects") -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise UserError(f"{option} takes N or LO-HI (like 3-5), got {text!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise UserError(f"{option} range must satisfy 1 <= LO <= HI, got {text!r}")
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


def _decoder(
    backend: str, url: str | None, decoder_dir: Path | None, model_dir: Path | None, merge: bool = True
):
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
    return Decoder(make_backend(backend, mdir, url), mdir, d, merge_adapter=merge)


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


def dec_default_dir() -> Path:
    from decoder.api import DEFAULT_DIR

    return DEFAULT_DIR


def _agent(backend: str, url: str | None, memory: Path | None, decode: str = "parallel"):
    from ami_agent.agent import DECODE_ROUNDS, Agent, AgentConfig

    if decode not in DECODE_ROUNDS:
        raise UserError(f"--decode {decode!r}: use one of {', '.join(DECODE_ROUNDS)}")
    return Agent(AgentConfig(backend=backend, url=url, memory=memory, decode=decode))


MemoryOpt = Annotated[Path | None, typer.Option(help="SQLite file of the conversations (default: the cache)")]


def this_command() -> str:
    """The command line that is running, for a training record's "reproduce" field ("" when not run as ami-agent)."""
    return "ami-agent " + " ".join(sys.argv[1:]) if sys.argv and "ami-agent" in sys.argv[0] else ""
