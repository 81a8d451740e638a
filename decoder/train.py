"""`ami-agent train decoder`: the plan projectors (one per world model) and one LoRA adapter, trained jointly on
generated (problem, latent plan) -> answer pairs. Only the answer's tokens carry loss; the base model stays frozen.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from decoder.data import Example, ExampleSampler, World
from decoder.lora import LORA_TARGETS, lora_model, pad_right, save_adapter, train_loop
from decoder.projector import PlanProjector, Tokens, assemble, code_tokens, projector_state
from decoder.prompt import Slot


@dataclass
class DecoderTrainConfig:
    """The recipe of checkpoints/decoder: 255 steps, 15.2 minutes on 2 CPU cores with native bf16 (float32 machines
    take longer)."""

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


def batch_tensors(examples: list[Example], projectors, tokens: Tokens, embed, end_id: int):
    """Right-padded inputs_embeds (B, L, H), attention mask and labels (-100 outside the answers, and on the soft
    vectors the interleaved answer carries)."""
    seqs, labels = [], []
    for ex in examples:
        projector = projectors[ex.world]
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
    return pad_right(seqs, labels)


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
) -> dict:
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    tok, model = lora_model(model_dir, cfg.rank, cfg.alpha)
    emb_matrix = model.get_input_embeddings().weight.detach()
    rms = float(emb_matrix.float().pow(2).mean().sqrt())
    embed = model.get_input_embeddings()
    projectors: dict[str, PlanProjector] = {}
    codebook = code_tokens(tok)
    codes = emb_matrix[codebook].float()
    code_chars = [tok.decode([i]) for i in codebook]
    for w in worlds:
        # worlds of the same latent width share the output map, trained together
        twin = next((p for p in projectors.values() if p.config["latent_dim"] == w.model.cfg.dim), None)
        projectors[w.name] = PlanProjector(
            w.model.cfg.dim, emb_matrix.shape[1], rms, codebook, code_chars, codes, shared=twin
        )
    lora_params = [p for p in model.parameters() if p.requires_grad]
    # a module shared by several projectors is trained (and counted) once
    proj_params = list({id(p): p for pr in projectors.values() for p in pr.parameters()}.values())
    tokens = Tokens(tok)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    sampler = ExampleSampler(
        worlds,
        cfg.objects,
        cfg.text_fraction,
        cfg.seed,
        cfg.walk_fraction,
        codes_for=lambda w, plan, objects: projectors[w].code_map(plan, objects),
        codebook=len(codebook),
        walk_steps=cfg.walk_steps,
    )
    n_lora = sum(p.numel() for p in lora_params)
    n_proj = sum(p.numel() for p in proj_params)
    log(
        f"training decoder: LoRA rank {cfg.rank} ({n_lora / 1e6:.2f}M params), projectors {n_proj / 1e6:.2f}M, "
        f"worlds {', '.join(w.name for w in worlds)}, budget {cfg.minutes:g} min"
    )

    batches = length_batches(sampler.sample, cfg.batch, cfg.pool, sampler.rng)

    def make_batch() -> dict:
        examples = next(batches)
        x, mask, y = batch_tensors(examples, projectors, tokens, embed, end_id)
        return {"inputs_embeds": x, "attention_mask": mask, "labels": y}

    groups = [{"params": lora_params, "lr": cfg.lr}, {"params": proj_params, "lr": cfg.projector_lr}]
    res = train_loop(model, groups, make_batch, cfg.minutes, cfg.max_steps, cfg.warmup, log)
    step, history, ema, minutes = res.steps, res.history, res.final_loss_ema, res.minutes
    out_dir.mkdir(parents=True, exist_ok=True)
    save_decoder(model, projectors, worlds, out_dir)
    record = {
        "kind": "decoder",
        "base_model": str(model_dir.name),
        "worlds": {
            w.name: {"domain": w.domain.name, "checkpoint": f"checkpoints/{w.checkpoint.name}"}
            for w in worlds
        },
        "config": asdict(cfg),
        "lora": {"rank": cfg.rank, "alpha": cfg.alpha, "targets": LORA_TARGETS, "parameters": n_lora},
        "projector_parameters": n_proj,
        "steps": step,
        "examples_seen": step * cfg.batch,
        "minutes_training": round(minutes, 2),
        "minutes_total": round((time.time() - t_start) / 60, 2),
        "final_loss_ema": round(ema or float("nan"), 4),
        "history": history,
        "command": command,
        "machine": f"{torch.get_num_threads()} CPU threads",
        "base_dtype": str(model.get_input_embeddings().weight.dtype).removeprefix("torch."),
    }
    (out_dir / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


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
