"""`ami-agent train ...`: the world model, the decoder, the reader and the ar-sft baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    DEFAULT_DECODER_WORLDS,
    PlanbenchDir,
    UserError,
    _decoder_world,
    _parse_range,
    _problem_files,
    default_checkpoint,
    err,
    out,
    this_command,
    train_app,
)


@train_app.command("world-model")
def train_world_model_cmd(
    domain: Annotated[Path, typer.Option(help="PDDL domain file")],
    objects: Annotated[str, typer.Option(help="Object counts to train on, N or LO-HI")] = "3-5",
    problems: Annotated[
        Path | None, typer.Option(help="Folder of seed problems (domains without a dedicated generator)")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps")] = 4000,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget in minutes")] = 25.0,
    batch_size: Annotated[int, typer.Option(help="Trajectories per step")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    regulariser: Annotated[str, typer.Option(help="sigreg | vicreg | none")] = "sigreg",
    init_from: Annotated[Path | None, typer.Option(help="Continue training from this checkpoint")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate")] = 1e-3,
    lr_schedule: Annotated[
        str,
        typer.Option(
            help="steps (the cosine decay runs over --steps) | budget (over whichever of --steps and --minutes "
            "runs out first: a run its minutes stop ends at a low rate)"
        ),
    ] = "steps",
    validate_every: Annotated[
        int, typer.Option(help="Steps between validations (and one at the end); 0: none")
    ] = 500,
    online_states: Annotated[
        str,
        typer.Option(
            help="all (the online encoder encodes every state of a trajectory) | first (only the first; the "
            "later states' latents come from the target encoder: about 40% less model compute a step)"
        ),
    ] = "all",
    walk_start: Annotated[
        int,
        typer.Option(
            help="A random-walk trajectory first takes 0..N unrecorded random steps, so it can start in any "
            "reachable state (use with --online-states first)"
        ),
    ] = 0,
    oracle_objects: Annotated[
        int,
        typer.Option(
            help="Largest object count labelled with optimal plans (breadth-first search); larger counts train "
            "on random walks only"
        ),
    ] = 7,
    critic_weight: Annotated[float, typer.Option(help="Weight of the critic's loss (steps to go)")] = 0.1,
    optimal_fraction: Annotated[
        float,
        typer.Option(
            help="Share of trajectories that follow an optimal plan (they label the critic); the rest walk"
        ),
    ] = 0.5,
    full_goal_fraction: Annotated[
        float,
        typer.Option(
            help="Share of generated problems whose goal is the whole target arrangement (long plans: the critic "
            "learns steps-to-go past a handful)"
        ),
    ] = 0.0,
    critic_head: Annotated[
        str,
        typer.Option(
            help="global (read from the global token) | sum (plus one term per object); with --init-from, sum "
            "adds the per-object term to a global-head checkpoint, which otherwise keeps its head"
        ),
    ] = "global",
    attention: Annotated[
        str,
        typer.Option(
            help="full (every token attends to every other) | local (attention follows the facts: an object's "
            "latent depends on its neighbourhood, not on the number of objects); a new model only"
        ),
    ] = "full",
    critic_attention: Annotated[
        str | None,
        typer.Option(
            help="full | local (an object's critic term sees its own state, the goal facts naming it and their "
            "arguments, so the estimate grows with the work on larger problems); default full for a new model; "
            "with --init-from it switches the continued critic (train it: --train-only critic)"
        ),
    ] = None,
    critic_kind: Annotated[
        str | None,
        typer.Option(
            help="attention (a transformer on the latent state and the goal) | relational (message passing over "
            "the facts the probe reads and the goal facts, learned from exact steps-to-go of every state of small "
            "problems, see --value-objects); default attention for a new model; with --init-from it gives the "
            "continued model a fresh critic of that kind (train it: --train-only critic)"
        ),
    ] = None,
    value_objects: Annotated[
        str,
        typer.Option(
            help="Object counts of the problems whose whole state space labels the relational critic, N or LO-HI "
            "(small: a 6-block blocksworld has 7,057 states)"
        ),
    ] = "3-6",
    train_only: Annotated[
        str | None,
        typer.Option(
            help="With --init-from, train only these parts (comma list of identities, encoder, predictor, probe, "
            "applicability, critic); probe,applicability,critic leave the latents, and the decoder trained on "
            "them, valid"
        ),
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint path (default checkpoints/DOMAIN.pt)")
    ] = None,
):
    """Train the JEPA world model on generated transitions; writes a checkpoint and a JSON training record."""
    from eval.planning import generated_success
    from planner.api import Planner
    from planner.jepa import ATTENTION, CRITICS, WorldModelConfig
    from planner.search import SearchConfig
    from planner.train import LR_SCHEDULES, ONLINE_STATES, TrainConfig, train_world_model, trainable_parts
    from planner.worlds.pddl import load_domain, load_problem

    d = load_domain(domain)
    seeds = [load_problem(f, d) for f in _problem_files(problems)] if problems else None
    lo, hi = _parse_range(objects)
    if lr_schedule not in LR_SCHEDULES:
        raise UserError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
    if online_states not in ONLINE_STATES:
        raise UserError(f"--online-states must be one of {', '.join(ONLINE_STATES)}, got {online_states!r}")
    if walk_start < 0:
        raise UserError(f"--walk-start must be 0 or more, got {walk_start}")
    if validate_every < 0:
        raise UserError(f"--validate-every must be 0 (no validation) or more, got {validate_every}")
    if critic_head not in ("sum", "global"):
        raise UserError(f"--critic-head must be sum or global, got {critic_head!r}")
    if attention not in ATTENTION:
        raise UserError(f"--attention must be one of {', '.join(ATTENTION)}, got {attention!r}")
    if init_from is not None and attention != "full":
        raise UserError("--attention applies to a new model; a continued checkpoint keeps its own")
    if critic_attention is not None and critic_attention not in ATTENTION:
        raise UserError(f"--critic-attention must be one of {', '.join(ATTENTION)}, got {critic_attention!r}")
    if critic_kind is not None and critic_kind not in CRITICS:
        raise UserError(f"--critic-kind must be one of {', '.join(CRITICS)}, got {critic_kind!r}")
    value_lo, value_hi = _parse_range(value_objects, "--value-objects")
    for name, value in (
        ("--optimal-fraction", optimal_fraction),
        ("--full-goal-fraction", full_goal_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{name} must be between 0 and 1, got {value}")
    parts = tuple(p.strip() for p in train_only.split(",") if p.strip()) if train_only is not None else ()
    if train_only is not None and not parts:
        raise UserError("--train-only is empty: name the parts to train, e.g. --train-only probe,critic")
    if seeds is None:
        from planner.worlds.generate import blocksworld_names

        if blocksworld_names(d) is None:
            raise UserError(
                f"domain '{d.name}' has no dedicated generator: pass --problems DIR with seed problems"
            )
    cfg = TrainConfig(
        objects=(lo, hi),
        steps=steps,
        minutes=minutes,
        batch_size=batch_size,
        seed=seed,
        regulariser=regulariser,
        validate_every=validate_every,
        lr=lr,
        lr_schedule=lr_schedule,
        online_states=online_states,
        walk_start=walk_start,
        oracle_objects=oracle_objects,
        critic_weight=critic_weight,
        train_only=parts,
        optimal_fraction=optimal_fraction,
        full_goal_fraction=full_goal_fraction,
        critic_attention=critic_attention or "",
        critic_kind=critic_kind or "",
        value_objects=(value_lo, value_hi),
        model=WorldModelConfig(critic_head=critic_head, attention=attention),
    )
    try:
        trainable_parts(cfg, continuing=init_from is not None)
    except ValueError as e:
        raise UserError(f"--train-only: {e}") from None
    out_path = out_path or default_checkpoint(d)
    sizes = sorted({lo, hi, hi + 1})

    def validate_fn(model):
        return generated_success(
            Planner(model, SearchConfig(time_limit=3)), d, sizes, per_size=10, seed_problems=seeds
        )

    command = this_command()
    from planner.values import StateSpaceTooLarge

    try:
        rec = train_world_model(
            d,
            cfg,
            out_path,
            seeds,
            validate_fn,
            command=command,
            log=lambda m: err.print(m),
            init_from=init_from,
        )
    except StateSpaceTooLarge as e:
        raise UserError(str(e)) from None
    out.print(
        f"wrote {out_path} ({rec['parameters'] / 1e6:.2f}M parameters, {rec['steps_done']} steps, "
        f"{rec['minutes']} min) and {out_path.with_suffix('.json')}"
    )


@train_app.command("decoder")
def train_decoder_cmd(
    world: Annotated[
        list[str] | None,
        typer.Option(help="A world to speak for: planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)"),
    ] = None,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for training, in minutes")] = 40.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    batch_size: Annotated[int, typer.Option(help="Examples per step")] = 4,
    rank: Annotated[int, typer.Option(help="LoRA rank (<= 16: what the vLLM engine is started with)")] = 16,
    lr: Annotated[float, typer.Option(help="LoRA learning rate (the projectors use twice this)")] = 1e-3,
    objects: Annotated[str, typer.Option(help="Object counts of the generated problems, N or LO-HI")] = "3-5",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the converted SmolLM2)")
    ] = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/decoder)")
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="A trained decoder folder to continue training")
    ] = None,
    walk_fraction: Annotated[
        float, typer.Option(help="Share of training plans that are random walks (0: optimal plans only)")
    ] = 0.5,
    text_fraction: Annotated[
        float, typer.Option(help="Share of training prompts in latent+text mode (the rest: latent)")
    ] = 0.25,
    name_weight: Annotated[
        float,
        typer.Option(
            help="Loss weight of the answer tokens that tell the objects apart (1: every token alike; 4 measured worse)"
        ),
    ] = 1.0,
    center_objects: Annotated[
        bool,
        typer.Option(help="Object codes minus the problem's mean (what tells a problem's objects apart)"),
    ] = True,
    shared_objects: Annotated[
        bool,
        typer.Option(help="One object map for all worlds (one way to bind names for the adapter to learn)"),
    ] = True,
    walk_backtrack: Annotated[
        bool,
        typer.Option(help="Random walks may take back their previous step (optimal plans never do)"),
    ] = True,
    legend_names: Annotated[
        bool,
        typer.Option(
            help="Each legend vector carries its object's name too (token embeddings), not only its identity"
        ),
    ] = False,
    interleave: Annotated[
        bool,
        typer.Option(
            help="Each answer line starts with its step's soft vectors; the plan is then decoded a line a round"
        ),
    ] = False,
    codebook: Annotated[
        bool,
        typer.Option(
            help="Objects are told apart by token codes (ranked by identity vector), not learned vectors"
        ),
    ] = False,
    write_codes: Annotated[
        bool,
        typer.Option(
            help="With --interleave --codebook: the answer writes each argument's code before its name (the codes "
            "are cut from the answer returned)"
        ),
    ] = False,
):
    """Train the plan projectors and the LoRA adapter jointly on generated problems and plans."""
    from decoder.api import DEFAULT_DIR
    from decoder.base_model import resolve_base_model
    from decoder.train import DecoderTrainConfig, continuation_problem, train_decoder

    if not 1 <= rank <= 16:
        raise UserError(f"--rank must be 1..16 (vLLM serves adapters up to rank 16), got {rank}")
    for name, value in (("--walk-fraction", walk_fraction), ("--text-fraction", text_fraction)):
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{name} must be between 0 and 1, got {value}")
    if codebook and legend_names:
        raise UserError("--codebook and --legend-names are two ways to tell objects apart: choose one")
    if write_codes and not (interleave and codebook):
        raise UserError(
            "--write-codes needs --interleave and --codebook (the codes it writes are the codebook's)"
        )
    if not name_weight > 0:
        raise UserError(f"--name-weight must be above 0, got {name_weight}")
    worlds = [_decoder_world(w, planbench_dir) for w in (world or DEFAULT_DECODER_WORLDS)]
    lo, hi = _parse_range(objects)
    cfg = DecoderTrainConfig(
        rank=rank,
        alpha=2 * rank,
        lr=lr,
        projector_lr=2 * lr,
        batch=batch_size,
        minutes=minutes,
        max_steps=steps,
        objects=(lo, hi),
        seed=seed,
        walk_fraction=walk_fraction,
        text_fraction=text_fraction,
        name_weight=name_weight,
        center_objects=center_objects,
        shared_objects=shared_objects,
        walk_backtrack=walk_backtrack,
        legend_names=legend_names,
        interleave=interleave,
        codebook=codebook,
        write_codes=write_codes,
    )
    if init_from is not None and (problem := continuation_problem(init_from, cfg)):
        raise UserError(problem)
    command = this_command()
    target = out_dir or DEFAULT_DIR
    rec = train_decoder(
        worlds,
        Path(resolve_base_model(str(model_dir) if model_dir else None)),
        target,
        cfg,
        command,
        log=lambda m: err.print(m),
        init_from=init_from,
    )
    out.print(
        f"wrote {target}/adapter, {target}/projector.pt and {target}/decoder.json "
        f"({rec['steps']} steps, {rec['minutes_training']} min)"
    )


@train_app.command("reader")
def train_reader_cmd(
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for training, in minutes")] = 20.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    batch_size: Annotated[int, typer.Option(help="Examples (clauses) per step")] = 16,
    rank: Annotated[int, typer.Option(help="LoRA rank (<= 16)")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    model_dir: Annotated[
        Path | None, typer.Option(help="Base model folder (default: the converted SmolLM2)")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/reader)")
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="A reader adapter folder to continue training (its adapter/)")
    ] = None,
    omit_table: Annotated[
        bool, typer.Option(help="Leave the table unsaid in some training requests (experimental)")
    ] = False,
):
    """Train the free-phrasing reader (a LoRA adapter) on generated paraphrases of blocksworld problems."""
    from ami_agent.agent import WORLDS_DIR
    from ami_agent.reader import READER_DIR, train_reader
    from decoder.base_model import resolve_base_model
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_domain

    if not 1 <= rank <= 16:
        raise UserError(f"--rank must be 1..16, got {rank}")
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    vb = Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
    target = out_dir or READER_DIR
    command = this_command()
    rec = train_reader(
        d,
        vb,
        Path(resolve_base_model(str(model_dir) if model_dir else None)),
        target,
        minutes,
        steps,
        batch_size,
        rank,
        lr,
        seed,
        command,
        log=lambda m: err.print(m),
        init_from=init_from,
        omit_table=omit_table,
    )
    out.print(
        f"wrote {target}/adapter and {target}/reader.json ({rec['steps']} steps, {rec['minutes_training']} min)"
    )


@train_app.command("ar-sft")
def train_ar_sft_cmd(
    world: Annotated[
        list[str] | None, typer.Option(help="planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)")
    ] = None,
    minutes: Annotated[
        float, typer.Option(help="Wall-clock budget (the decoder's, for a fair baseline)")
    ] = 40.0,
    steps: Annotated[int, typer.Option(help="At most this many optimiser steps")] = 100_000,
    objects: Annotated[str, typer.Option(help="Object counts of the generated problems")] = "3-5",
    rank: Annotated[int, typer.Option(help="LoRA rank (the decoder's)")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    planbench_dir: PlanbenchDir = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default checkpoints/ar-sft)")
    ] = None,
):
    """Train the pure autoregressive baseline: the base model + LoRA writing plans straight from the query."""
    from decoder.base_model import resolve_base_model
    from eval.baselines import AR_SFT_DIR, train_ar_sft

    worlds = [_decoder_world(w, planbench_dir) for w in (world or DEFAULT_DECODER_WORLDS)]
    lo, hi = _parse_range(objects)
    target = out_dir or AR_SFT_DIR
    command = this_command()
    rec = train_ar_sft(
        worlds,
        Path(resolve_base_model(None)),
        target,
        minutes,
        (lo, hi),
        steps,
        rank=rank,
        seed=seed,
        command=command,
        log=lambda m: err.print(m),
    )
    out.print(
        f"wrote {target}/adapter and {target}/ar-sft.json ({rec['steps']} steps, {rec['minutes_training']} min)"
    )
