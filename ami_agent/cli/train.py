"""`ami-agent train ...`: the world model, the decoder, the reader and the ar-sft baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ami_agent.cli.common import (
    RECIPES,
    Minutes,
    OutDir,
    PlanbenchDir,
    UserError,
    Worlds,
    default_checkpoint,
    err,
    out,
    problem_files,
    this_command,
    train_app,
)


@train_app.command("world-model")
def train_world_model_cmd(
    domain: Annotated[Path, typer.Option(help="PDDL domain file")],
    config: Annotated[
        Path | None,
        typer.Option(help="Recipe file (YAML, only what differs from the default recipe; see recipes/)"),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Total minutes, shared by the stages in the recipe's proportions (default: the recipe's)"
        ),
    ] = None,
    problems: Annotated[
        Path | None, typer.Option(help="Folder of seed problems (domains without a dedicated generator)")
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint path (default checkpoints/DOMAIN.pt)")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint this recipe made: run the recipe from --from-stage on, on its weights (the parts "
            "that stage and the later ones learn start anew, the others, and so the latents, stay as they are)"
        ),
    ] = None,
    from_stage: Annotated[
        str | None, typer.Option(help="With --resume: the stage to run the recipe from")
    ] = None,
):
    """Train the JEPA world model on generated problems by a recipe (default: the one that made
    checkpoints/blocksworld-4ops.pt, 28.5 minutes on 2 cores); writes a checkpoint and its JSON record."""
    from planner.checkpoint import CheckpointError
    from planner.train import Recipe, RecipeError, check_recipe, train_world_model
    from planner.values import StateSpaceTooLarge
    from planner.worlds.blocksworld import blocksworld_names
    from planner.worlds.pddl import load_domain, load_problem
    from planner.worlds.spec import WorldSpec

    d = load_domain(domain)
    seeds = [load_problem(f, d) for f in problem_files(problems)] if problems else None
    if seeds is None and blocksworld_names(d) is None and WorldSpec.beside(d) is None:
        raise UserError(
            f"domain '{d.name}' has no dedicated generator and no world spec beside it "
            f"({domain.with_name(domain.stem + '.problems.yaml')}): write one (docs/worlds.md) or pass "
            "--problems DIR with seed problems"
        )
    # a world with its own recipe (recipes/<domain file stem>.yaml) trains by it unless --config says otherwise
    own = RECIPES / f"{domain.stem}.yaml"
    if config is None and own.exists():
        config = own
    try:
        recipe = Recipe.load(config) if config else Recipe()
        if minutes is not None:
            recipe = recipe.scaled(_positive(minutes))
        check_recipe(recipe)
    except RecipeError as e:
        raise UserError(str(e)) from None
    if (resume is None) != (from_stage is None):
        raise UserError("--resume and --from-stage go together: the checkpoint, and the stage to run from")
    out_path = out_path or default_checkpoint(d)
    err.print(
        f"training a world model for '{d.name}': {len(recipe.stages)} stage(s), {recipe.minutes:.1f} min"
    )
    try:
        rec = train_world_model(
            d,
            recipe,
            out_path,
            seeds,
            command=this_command(),
            log=lambda m: err.print(m),
            recipe_file=_shown(config) if config else "",
            resume=(resume, from_stage) if resume is not None else None,
        )
    except (StateSpaceTooLarge, RecipeError, CheckpointError) as e:
        raise UserError(str(e)) from None
    out.print(
        f"wrote {out_path} ({rec['parameters'] / 1e6:.2f}M parameters, {rec['steps_total']} steps, "
        f"{rec['minutes_total']} min) and {out_path.with_suffix('.json')}"
    )


def _shown(path: Path) -> str:
    """A recipe path as the record keeps it: relative to the repository for its own recipes."""
    try:
        return str(path.resolve().relative_to(RECIPES.parent))
    except ValueError:
        return str(path)


@train_app.command("decoder")
def train_decoder_cmd(
    world: Worlds = None,
    add_world: Annotated[
        list[str] | None,
        typer.Option(
            "--add-world",
            help="Add a world (DOMAIN.pddl[,CONFIG.yaml] or planbench:SUITE) to the trained decoder in --out: "
            "a projector and adapter of its own, the others kept (repeatable)",
        ),
    ] = None,
    minutes: Minutes = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: OutDir = None,
):
    """Train the plan projectors and the LoRA adapter jointly on generated problems and plans, then add the worlds
    that get an adapter of their own (the recipe of checkpoints/decoder: blocksworld and mystery, 255 + 850 steps,
    then logistics added). --add-world adds worlds to a decoder already trained."""
    from decoder.api import DEFAULT_DIR
    from decoder.base_model import resolve_base_model
    from decoder.train import AddedWorldConfig, DecoderTrainConfig, train_added_world, train_decoder
    from eval.suites import ADDED_DECODER_WORLDS, DECODER_WORLDS, world_for

    minutes = None if minutes is None else _positive(minutes)  # refused before anything loads
    target = out_dir or DEFAULT_DIR
    base = Path(resolve_base_model(None))
    if not add_world:
        worlds = [world_for(w, planbench_dir) for w in (world or DECODER_WORLDS)]
        cfg = DecoderTrainConfig() if minutes is None else DecoderTrainConfig(minutes=minutes)
        rec = train_decoder(worlds, base, target, cfg, this_command(), log=lambda m: err.print(m))
        out.print(
            f"wrote {target}/adapter, {target}/projector.pt and {target}/decoder.json "
            f"({rec['steps']} steps, {rec['minutes_training']} min)"
        )
        add_world = [] if world else ADDED_DECODER_WORLDS
    elif not (target / "projector.pt").exists():
        raise UserError(
            f"{target}: no trained decoder to add a world to; train one first (without --add-world)"
        )
    for spec in add_world:
        w = world_for(spec, planbench_dir)
        cfg = AddedWorldConfig() if minutes is None else AddedWorldConfig(minutes=minutes)
        rec = train_added_world(w, base, target, target, cfg, this_command(), log=lambda m: err.print(m))
        out.print(
            f"added world {w.name}: wrote {target}/{w.name}/adapter and its projector "
            f"({rec['steps']} steps, {rec['minutes_training']} min)"
        )


@train_app.command("reader")
def train_reader_cmd(minutes: Minutes = None, out_dir: OutDir = None):
    """Train the free-phrasing reader (a LoRA adapter) on generated blocksworld requests read whole (the recipe
    of checkpoints/reader: 40 minutes)."""
    from ami_agent.reader import READER_DIR
    from ami_agent.reader_train import train_reader
    from ami_agent.services import blocksworld
    from decoder.base_model import resolve_base_model

    d, vb = blocksworld()
    target = out_dir or READER_DIR
    kw = {} if minutes is None else {"minutes": _positive(minutes)}
    rec = train_reader(
        vb,
        Path(resolve_base_model(None)),
        target,
        command=this_command(),
        log=lambda m: err.print(m),
        **kw,
    )
    out.print(
        f"wrote {target}/adapter and {target}/reader.json ({rec['steps']} steps, {rec['minutes_training']} min)"
    )


@train_app.command("ar-sft")
def train_ar_sft_cmd(
    world: Worlds = None,
    add_world: Annotated[
        list[str] | None,
        typer.Option(
            "--add-world",
            help="Train only the adapter of an added world (DOMAIN.pddl[,CONFIG.yaml]) into "
            "checkpoints/ar-sft/<world> (repeatable)",
        ),
    ] = None,
    minutes: Minutes = None,
    planbench_dir: PlanbenchDir = None,
    out_dir: OutDir = None,
):
    """Train the pure autoregressive baseline: the base model + LoRA writing plans straight from the query, on the
    decoder's generated problems (the recipe of checkpoints/ar-sft: 40 minutes on blocksworld and mystery, then 40
    for logistics' own adapter on its world model's problem sizes). --add-world trains an added world's alone."""
    from decoder.base_model import resolve_base_model
    from eval.baselines import AR_SFT_DIR, train_added_ar_sft, train_ar_sft
    from eval.suites import ADDED_DECODER_WORLDS, DECODER_WORLDS, world_for

    kw = {} if minutes is None else {"minutes": _positive(minutes)}
    if add_world and (world or out_dir):
        raise UserError(
            "--add-world trains into checkpoints/ar-sft/<world>; give it without --world and --out"
        )
    base = Path(resolve_base_model(None))
    if not add_world:
        worlds = [world_for(w, planbench_dir) for w in (world or DECODER_WORLDS)]
        target = out_dir or AR_SFT_DIR
        rec = train_ar_sft(worlds, base, target, command=this_command(), log=lambda m: err.print(m), **kw)
        out.print(
            f"wrote {target}/adapter and {target}/ar-sft.json ({rec['steps']} steps, {rec['minutes_training']} min)"
        )
        add_world = [] if (world or out_dir) else ADDED_DECODER_WORLDS
    for spec in add_world:
        w = world_for(spec, planbench_dir)
        rec = train_added_ar_sft(w, base, command=this_command(), log=lambda m: err.print(m), **kw)
        out.print(
            f"added world {w.name}: wrote {AR_SFT_DIR / w.name}/adapter and ar-sft.json "
            f"({rec['steps']} steps, {rec['minutes_training']} min)"
        )


def _positive(minutes: float) -> float:
    if minutes <= 0:
        raise UserError(f"--minutes must be above 0, got {minutes}")
    return minutes
