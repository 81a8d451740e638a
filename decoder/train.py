"""`ami-agent train decoder`: the plan projectors (one per world model) and one LoRA adapter, trained jointly on
generated (problem, latent plan) -> answer pairs, then on predicted latent states -> their description as well.
Only the answer's tokens carry loss (and, for states, the pointers' choice of object); the base model stays frozen.

Two stages in one command, the second starting from the first's saved adapter and projectors: plans (255 steps),
then states mixed with plans (`state_steps`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from decoder.data import Example, ExampleSampler, World
from decoder.lora import LORA_TARGETS, lora_model, pad_right, save_adapter, train_loop
from decoder.projector import (
    STATE_HEAD,
    PlanProjector,
    Tokens,
    assemble,
    code_tokens,
    fact_targets,
    load_projectors,
    pointer_targets,
    predicate_names,
    projector_state,
)
from decoder.prompt import Slot


@dataclass
class DecoderTrainConfig:
    """The recipe of checkpoints/decoder: 255 steps of plans (15.2 minutes), then 850 of states and plans (29.6
    minutes), on 2 CPU cores with native bf16 (float32 machines take longer)."""

    rank: int = 16
    alpha: int = 32
    lr: float = 1e-3  # LoRA
    projector_lr: float = 2e-3
    batch: int = 4  # more, smaller steps bind names faster per minute (measured: 86% vs 76% after 8 min)
    minutes: float = 70.0  # a cap: the steps end the committed recipe first
    max_steps: int = 255
    warmup: int = 10
    objects: tuple[int, int] = (3, 8)  # problem sizes (it reads back plans of 12 objects and more)
    text_fraction: float = 0.25  # prompts in latent+text mode (the rest: latent)
    seed: int = 0
    walk_fraction: float = 0.5  # plans that are random walks (their order cannot be guessed from the text)
    walk_steps: int = 20  # the longest walk
    pool: int = 8  # batches sampled at once and cut by length (less padding)
    # stage 2: describing predicted states, mixed with stage 1's plans so that plans are not forgotten
    state_steps: int = 850
    state_fraction: float = 0.67  # stage 2's examples that describe a state (the rest: plans)
    state_walk_steps: int = 24  # a described state is the end of a random walk of 0 to this many steps
    # the pointers' cross-entropy (which object each one should name), added to the loss
    pointer_weight: float = 1.0


def batch_tensors(examples: list[Example], projectors, tokens: Tokens, embed, end_id: int, relations=None):
    """Right-padded inputs_embeds (B, L, H), attention mask and labels (-100 outside the answers, and on the soft
    vectors the interleaved answer carries); with `relations` (world -> its predicates of two, one and no
    arguments), also the state head's auxiliary loss over the batch's described states (None when it has none):
    the pointers' cross-entropy against the objects they should name, and the read-outs' binary cross-entropy
    against the facts of one and of no argument."""
    seqs, labels, pointer_losses = [], [], []
    for ex in examples:
        projector = projectors[ex.world]
        if ex.state is not None:
            slots = projector.state_slots(ex.state, ex.prompt)
            if relations:
                pointer_losses.append(state_head_loss(projector, ex, *relations[ex.world]))
        else:
            slots = projector.slots(ex.plan, ex.prompt)
        chars = projector.config["code_chars"]
        prompt = assemble(ex.prompt, tokens, embed, slots)
        parts, lab = [prompt], [-100] * prompt.shape[0]
        for seg in [*ex.prompt.answer_segments, None]:
            if isinstance(seg, Slot):
                parts.append(slots[seg].to(prompt.dtype))
                lab += [-100] * parts[-1].shape[0]
            else:
                ids = [end_id] if seg is None else tokens.coded(seg, chars)
                parts.append(embed(torch.tensor(ids, dtype=torch.long)).to(prompt.dtype))
                lab += ids
        seqs.append(torch.cat(parts, 0))
        labels.append(lab)
    x, mask, y = pad_right(seqs, labels)
    if relations is None:
        return x, mask, y
    return x, mask, y, (torch.stack(pointer_losses).mean() if pointer_losses else None)


def state_head_loss(projector: PlanProjector, ex: Example, binary, unary, nullary) -> torch.Tensor:
    """The state head's auxiliary loss on one described state (see `batch_tensors`)."""
    loss = torch.zeros(())
    if binary:
        target = pointer_targets(ex.objects, ex.facts, binary)
        loss = loss + torch.nn.functional.cross_entropy(
            projector.pointer_logits(ex.state).flatten(0, 1), target.flatten()
        )
    u_logits, z_logits = projector.fact_logits(ex.state)
    u, z = fact_targets(ex.objects, ex.facts, unary, nullary)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    if unary:
        loss = loss + bce(u_logits, u)
    if nullary:
        loss = loss + bce(z_logits, z)
    return loss


def length_batches(sample, batch: int, pool: int, rng, key=None):
    """Endless batches of examples of similar length: `pool` batches' worth sampled at once, sorted by length, cut
    into batches, served in random order. A padded position costs as much as a real token, and one 14-step walk
    in a batch of 3-step plans used to double the batch's cost."""
    while True:
        examples = sorted((sample() for _ in range(batch * max(1, pool))), key=key or example_length)
        groups = [examples[i : i + batch] for i in range(0, len(examples), batch)]
        rng.shuffle(groups)
        yield from groups


def example_length(ex: Example) -> int:
    """Characters of prompt and answer, soft slots counted as a few: proportional enough to tokens to sort by."""
    return len(ex.prompt.text(soft="xxxx")) + len(ex.prompt.answer)


def train_decoder(
    worlds: list[World],
    model_dir: Path,
    out_dir: Path,
    cfg: DecoderTrainConfig,
    command: str = "",
    log=None,
    stage1: Path | None = None,
) -> dict:
    """Both stages; `stage1`: a folder holding stage 1's output (adapter, projector.pt, decoder.json) to start
    stage 2 from instead of training stage 1 again."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t_start = time.time()
    if stage1 is None:
        first = _train_stage(worlds, model_dir, out_dir, cfg, log, states=False)
    else:
        first = json.loads((Path(stage1) / "decoder.json").read_text())
        first = first.get("stages", {}).get("plans", first)
        log(f"stage 1 (plans) from {stage1}: {first['steps']} steps, {first['minutes_training']} min")
    second = _train_stage(worlds, model_dir, out_dir, cfg, log, states=True, start=Path(stage1 or out_dir))
    record = {
        "kind": "decoder",
        "base_model": str(model_dir.name),
        "worlds": {
            w.name: {"domain": w.domain.name, "checkpoint": f"checkpoints/{w.checkpoint.name}"}
            for w in worlds
        },
        "config": asdict(cfg),
        "lora": {"rank": cfg.rank, "alpha": cfg.alpha, "targets": LORA_TARGETS, "parameters": second["lora"]},
        "projector_parameters": second["projector"],
        "steps": first["steps"] + second["steps"],
        "minutes_training": round(first["minutes_training"] + second["minutes_training"], 2),
        "minutes_total": round(first.get("minutes_total", 0) + (time.time() - t_start) / 60, 2),
        "final_loss_ema": second["final_loss_ema"],
        "stages": {
            "plans": {k: first[k] for k in ("steps", "minutes_training", "final_loss_ema", "history")},
            "states": {k: second[k] for k in ("steps", "minutes_training", "final_loss_ema", "history")},
        },
        "command": command,
        "machine": f"{torch.get_num_threads()} CPU threads",
        "base_dtype": second["dtype"],
    }
    (out_dir / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def new_projector(
    world: World, tok, emb_matrix: torch.Tensor, shared: PlanProjector | None = None
) -> PlanProjector:
    """An untrained projector for a world: the base model's widths and code tokens, one pointer per binary
    predicate, read-outs for its predicates of one and of no argument."""
    codebook = code_tokens(tok)
    binary, unary, nullary = (predicate_names(world.domain, k) for k in (2, 1, 0))
    return PlanProjector(
        world.model.cfg.dim,
        emb_matrix.shape[1],
        float(emb_matrix.float().pow(2).mean().sqrt()),
        codebook,
        [tok.decode([i]) for i in codebook],
        emb_matrix[codebook].float(),
        shared=shared,
        relations=max(1, len(binary)),
        unary=len(unary),
        nullary=len(nullary),
    )


def _train_stage(
    worlds: list[World], model_dir: Path, out_dir: Path, cfg, log, states: bool, start: Path | None = None
) -> dict:
    """Stage 1 (`states` False): plans from a new adapter and new projectors. Stage 2: states and plans, from the
    adapter and projectors saved in `start` (the state pointers start new). Saves into out_dir."""
    torch.manual_seed(cfg.seed + (1 if states else 0))
    tok, model = lora_model(model_dir, cfg.rank, cfg.alpha, adapter=start / "adapter" if states else None)
    embed = model.get_input_embeddings()
    projectors: dict[str, PlanProjector] = {}
    codebook = code_tokens(tok)
    saved = load_projectors(start / "projector.pt") if states else {}
    relations = {w.name: tuple(predicate_names(w.domain, k) for k in (2, 1, 0)) for w in worlds}
    for w in worlds:
        # worlds of the same latent width share the output map, trained together
        twin = next((p for p in projectors.values() if p.config["latent_dim"] == w.model.cfg.dim), None)
        p = new_projector(w, tok, embed.weight.detach(), shared=twin)
        if states:
            if w.name not in saved:
                raise ValueError(f"{start}/projector.pt has no projector for world {w.name}")
            kept = {k: v for k, v in saved[w.name][0].state_dict().items() if not k.startswith(STATE_HEAD)}
            missing, unexpected = p.load_state_dict(kept, strict=False)
            if unexpected or any(not k.startswith(STATE_HEAD) for k in missing):
                raise ValueError(f"{start}/projector.pt does not fit world {w.name}'s projector")
        projectors[w.name] = p
    lora_params = [p for p in model.parameters() if p.requires_grad]
    # a module shared by several projectors is trained (and counted) once
    proj_params = list({id(p): p for pr in projectors.values() for p in pr.parameters()}.values())
    tokens = Tokens(tok)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    sampler = ExampleSampler(
        worlds,
        cfg.objects,
        cfg.text_fraction,
        cfg.seed + (1 if states else 0),
        cfg.walk_fraction,
        codes_for=lambda w, plan, objects: projectors[w].code_map(plan, objects),
        codebook=len(codebook),
        walk_steps=cfg.walk_steps,
    )
    n_lora = sum(p.numel() for p in lora_params)
    n_proj = sum(p.numel() for p in proj_params)
    steps = cfg.state_steps if states else cfg.max_steps
    log(
        f"training decoder, stage {'2 (states and plans)' if states else '1 (plans)'}: LoRA rank {cfg.rank} "
        f"({n_lora / 1e6:.2f}M params), projectors {n_proj / 1e6:.2f}M, worlds {', '.join(w.name for w in worlds)}, "
        f"{steps} steps"
    )

    def sample() -> Example:
        if states and sampler.rng.random() < cfg.state_fraction:
            return sampler.sample_state(walk_steps=cfg.state_walk_steps)
        return sampler.sample()

    batches = length_batches(sample, cfg.batch, cfg.pool, sampler.rng)

    def make_batch() -> dict:
        examples = next(batches)
        x, mask, y, pointer = batch_tensors(examples, projectors, tokens, embed, end_id, relations)
        batch = {"inputs_embeds": x, "attention_mask": mask, "labels": y}
        if pointer is not None:
            batch["aux_loss"] = cfg.pointer_weight * pointer
        return batch

    groups = [{"params": lora_params, "lr": cfg.lr}, {"params": proj_params, "lr": cfg.projector_lr}]
    res = train_loop(model, groups, make_batch, cfg.minutes, steps, cfg.warmup, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_decoder(model, projectors, worlds, out_dir)
    return {
        "steps": res.steps,
        "minutes_training": round(res.minutes, 2),
        "final_loss_ema": round(res.final_loss_ema, 4),
        "history": res.history,
        "lora": n_lora,
        "projector": n_proj,
        "dtype": str(model.get_input_embeddings().weight.dtype).removeprefix("torch."),
    }


def save_decoder(model, projectors: dict[str, PlanProjector], worlds: list[World], out_dir: Path) -> None:
    save_adapter(model, out_dir / "adapter")
    blob = {
        "worlds": {
            w.name: {
                "config": projectors[w.name].config,
                "state_dict": projector_state(projectors[w.name]),
                "checkpoint": w.checkpoint.name,
                "domain": w.domain.name,
            }
            for w in worlds
        }
    }
    torch.save(blob, out_dir / "projector.pt")


@dataclass
class AddedWorldConfig:
    """Adding a world to a trained decoder: a projector and an adapter of its own, the adapter started from the
    decoder's, trained on that world's generated plans; the worlds already there keep theirs, bit for bit."""

    lr: float = 1e-3  # its adapter
    projector_lr: float = 2e-3
    batch: int = 4
    minutes: float = 45.0  # a cap: the steps end the recipe first (30.3 minutes on 2 cores, bf16)
    max_steps: int = 117
    warmup: int = 10
    objects: tuple[int, int] = (8, 16)  # problem sizes (object counts)
    walk_steps: int = 24  # plans are random walks of 1 to this many steps (an optimal oracle is out of reach)
    text_fraction: float = 0.25
    seed: int = 0
    pool: int = 8


def train_added_world(
    world: World,
    model_dir: Path,
    decoder_dir: Path,
    out_dir: Path,
    cfg: AddedWorldConfig,
    command: str = "",
    log=None,
) -> dict:
    """A projector and an adapter for `world`, added to the decoder in `decoder_dir` (its adapter and other
    projectors kept as they are); writes the whole decoder to out_dir (which may be decoder_dir), the new adapter
    under out_dir/WORLD/adapter."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    decoder_dir, out_dir = Path(decoder_dir), Path(out_dir)
    record = json.loads((decoder_dir / "decoder.json").read_text())
    blob = torch.load(decoder_dir / "projector.pt", map_location="cpu", weights_only=True)
    torch.manual_seed(cfg.seed)
    tok, model = lora_model(
        model_dir, record["lora"]["rank"], record["lora"]["alpha"], decoder_dir / "adapter"
    )
    embed = model.get_input_embeddings()
    codebook = code_tokens(tok)
    projector = new_projector(world, tok, embed.weight.detach())
    # started from a trained projector of the same widths: its output map already speaks to the language model
    twin = next(
        (e for e in blob["worlds"].values() if e["config"]["latent_dim"] == world.model.cfg.dim), None
    )
    if twin is not None:
        own = projector.state_dict()
        start = {
            k: v.float()
            for k, v in twin["state_dict"].items()
            if k in own
            and own[k].shape == v.shape
            and not k.startswith(STATE_HEAD)
            and k not in ("codes", "code_dir")
        }
        projector.load_state_dict(start, strict=False)
    params = list(projector.parameters())
    lora_params = [p for p in model.parameters() if p.requires_grad]
    tokens = Tokens(tok)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    sampler = ExampleSampler(
        [world],
        cfg.objects,
        cfg.text_fraction,
        cfg.seed,
        walk_fraction=1.0,
        codes_for=lambda w, plan, objects: projector.code_map(plan, objects),
        codebook=len(codebook),
        walk_steps=cfg.walk_steps,
    )
    log(
        f"adding world {world.name} to the decoder in {decoder_dir}: its projector "
        f"({sum(p.numel() for p in params) / 1e6:.2f}M params) and adapter "
        f"({sum(p.numel() for p in lora_params) / 1e6:.2f}M), {cfg.max_steps} steps"
    )
    batches = length_batches(sampler.sample, cfg.batch, cfg.pool, sampler.rng)

    def make_batch() -> dict:
        x, mask, y = batch_tensors(next(batches), {world.name: projector}, tokens, embed, end_id)
        return {"inputs_embeds": x, "attention_mask": mask, "labels": y}

    groups = [{"params": lora_params, "lr": cfg.lr}, {"params": params, "lr": cfg.projector_lr}]
    res = train_loop(model, groups, make_batch, cfg.minutes, cfg.max_steps, cfg.warmup, log)
    blob["worlds"][world.name] = {
        "config": projector.config,
        "state_dict": projector_state(projector),
        "checkpoint": world.checkpoint.name,
        "domain": world.domain.name,
        "states": False,  # its state head is untrained: the decoder does not describe this world's states
        "adapter": f"{world.name}/adapter",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != decoder_dir.resolve():
        shutil.copytree(decoder_dir / "adapter", out_dir / "adapter", dirs_exist_ok=True)
    save_adapter(model, out_dir / world.name / "adapter")
    torch.save(blob, out_dir / "projector.pt")
    added = {
        "domain": world.domain.name,
        "checkpoint": f"checkpoints/{world.checkpoint.name}",
        "config": asdict(cfg),
        "projector_parameters": sum(p.numel() for p in params),
        "adapter_parameters": sum(p.numel() for p in lora_params),
        "steps": res.steps,
        "minutes_training": round(res.minutes, 2),
        "final_loss_ema": round(res.final_loss_ema, 4),
        "history": res.history,
        "command": command,
        "machine": f"{torch.get_num_threads()} CPU threads",
    }
    record.setdefault("added_worlds", {})[world.name] = added
    (out_dir / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
    return added
