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
from decoder.projector import PlanProjector, assemble, code_tokens, name_vectors
from decoder.prompt import Slot, split_codes


@dataclass
class DecoderTrainConfig:
    rank: int = 16
    alpha: int = 32
    lr: float = 1e-3  # LoRA
    projector_lr: float = 2e-3
    batch: int = 4  # more, smaller steps bind names faster per minute (measured: 86% vs 76% after 8 min)
    minutes: float = 40.0
    max_steps: int = 100_000
    warmup: int = 10
    objects: tuple[int, int] = (3, 5)
    text_fraction: float = 0.25
    seed: int = 0
    walk_fraction: float = 0.5  # plans that are random walks (their order cannot be guessed from the text)
    pool: int = 8  # batches sampled at once and cut by length (less padding)
    # loss weight of the answer tokens that tell the objects apart (1: a plain mean). 4 looked better after 8 min
    # (teacher-forced object-name tokens on 96 held-out problems: 91.5% vs 85.7%) but worse after the full 42 min
    # (latent faithfulness, all 500: blocksworld 54.2% vs 71.0%, mystery 50.0% vs 55.0%), so it is off
    name_weight: float = 1.0
    center_objects: bool = True  # object codes minus the problem's mean (decoder/projector.py)
    shared_objects: bool = True  # one object map for all worlds of the same latent width and arity
    walk_backtrack: bool = True  # random walks may take back their previous step (decoder/data.py)
    legend_names: bool = False  # legend vectors carry their object's name too (decoder/projector.py)
    interleave: bool = False  # each answer line starts with its step's soft vectors (decoder/prompt.py)
    codebook: bool = False  # objects are token codes, legend and arguments alike (decoder/projector.py)
    write_codes: bool = False  # the answer writes each argument's code before its name (decoder/prompt.py)


class Tokens:
    """Text -> token ids with a cache (prompts repeat the same fixed pieces)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.cache: dict[str, list[int]] = {}

    def __call__(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if len(self.cache) < 50_000:
                self.cache[text] = ids
        return ids

    def coded(self, text: str, chars) -> list[int]:
        """Text in which code characters (`chars`) stand alone: each is its own token, the rest as `__call__`."""
        return [i for piece in split_codes(text, chars) for i in self(piece)]


def example_slots(ex: Example, projector: PlanProjector, tokens: Tokens, embed) -> dict:
    names = name_vectors(ex.prompt, tokens, embed) if projector.config.get("legend_names") else None
    return projector.slots(ex.plan, ex.prompt, names)


def batch_tensors(examples: list[Example], projectors, tokens: Tokens, embed, end_id: int):
    """Right-padded inputs_embeds (B, L, H), attention mask and labels (-100 outside the answers, and on the soft
    vectors an interleaved answer carries)."""
    seqs, labels = [], []
    for ex in examples:
        slots = example_slots(ex, projectors[ex.world], tokens, embed)
        chars = projectors[ex.world].config.get("code_chars")
        prompt = assemble(ex.prompt, tokens, embed, slots)
        parts, lab = [prompt], [-100] * prompt.shape[0]
        for seg in [*(ex.prompt.answer_segments or [ex.prompt.answer]), None]:
            if isinstance(seg, Slot):
                parts.append(slots[seg].to(prompt.dtype))
                lab += [-100] * parts[-1].shape[0]
            else:
                ids = [end_id] if seg is None else tokens.coded(seg, chars) if chars else tokens(seg)
                parts.append(embed(torch.tensor(ids, dtype=torch.long)).to(prompt.dtype))
                lab += ids
        seqs.append(torch.cat(parts, 0))
        labels.append(lab)
    return pad_right(seqs, labels)


def name_weights(
    examples: list[Example], labels: torch.Tensor, tokens: Tokens, worlds, weight: float, codes=None
):
    """(B, L) loss weights beside `labels`: `weight` on the tokens that tell the example's objects apart (a token of
    some object's name that not every name has: "red", not "block"; wherever it occurs in the answer), 1 elsewhere.
    The names are what a latent-mode answer gets wrong; the rest of the answer is nearly free once the format is
    learned. codes: {world: token ids of the code characters its answers write} (--write-codes): a written code
    tells objects apart as a name does, and weighs the same."""
    verbalizers = {w.name: w.verbalizer for w in worlds}
    out = torch.ones(labels.shape)
    for row, ex in enumerate(examples):
        vb = verbalizers[ex.world]
        sets = [set(tokens(" " + vb.object_phrase(o))) for o in ex.objects]
        names = (set().union(*sets) - set.intersection(*sets)) | set((codes or {}).get(ex.world, ()))
        if names:
            out[row][torch.isin(labels[row], torch.tensor(sorted(names)))] = weight
    return out


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
    init_from: Path | None = None,
) -> dict:
    """init_from: a trained decoder folder (adapter + projector.pt) to continue from."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if init_from is not None and (problem := continuation_problem(init_from, cfg)):
        raise ValueError(problem)
    if cfg.write_codes and not (cfg.interleave and cfg.codebook):
        raise ValueError("write_codes needs interleave and codebook (the codes it writes are the codebook's)")
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    tok, model = lora_model(model_dir, cfg.rank, cfg.alpha, init_from / "adapter" if init_from else None)
    emb_matrix = model.get_input_embeddings().weight.detach()
    rms = float(emb_matrix.float().pow(2).mean().sqrt())
    embed = model.get_input_embeddings()
    projectors: dict[str, PlanProjector] = {}
    codebook = code_tokens(tok) if cfg.codebook else None
    codes = emb_matrix[codebook].float() if codebook else None
    code_chars = [tok.decode([i]) for i in codebook] if codebook and cfg.write_codes else None
    for w in worlds:
        dims = (w.model.cfg.dim, w.model.vocab.max_arity)
        twin = next(
            (p for p in projectors.values() if (p.config["latent_dim"], p.config["max_arity"]) == dims), None
        )
        projectors[w.name] = PlanProjector(
            dims[0],
            emb_matrix.shape[1],
            rms,
            max_arity=dims[1],
            center=cfg.center_objects,
            shared=twin if cfg.shared_objects else None,
            legend_names=cfg.legend_names,
            interleave=cfg.interleave,
            codebook=codebook,
            codes=codes,
            code_chars=code_chars,
        )
    if init_from is not None:
        for name, (proj, _) in load_projectors(init_from / "projector.pt").items():
            if name in projectors:
                projectors[name].load_state_dict(proj.state_dict())
    lora_params = [p for p in model.parameters() if p.requires_grad]
    # a module shared by several projectors is trained (and counted) once
    proj_params = list({id(p): p for pr in projectors.values() for p in pr.parameters()}.values())
    tokens = Tokens(tok)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    code_ids = {w.name: codebook for w in worlds} if code_chars else None
    sampler = ExampleSampler(
        worlds,
        cfg.objects,
        cfg.text_fraction,
        cfg.seed,
        cfg.walk_fraction,
        cfg.walk_backtrack,
        interleave=cfg.interleave,
        codes_for=(lambda w, plan, objects: projectors[w].code_map(plan, objects)) if code_chars else None,
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
        out = {"inputs_embeds": x, "attention_mask": mask, "labels": y}
        if cfg.name_weight != 1.0:
            out["label_weights"] = name_weights(examples, y, tokens, worlds, cfg.name_weight, code_ids)
        return out

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
        "continued_from": str(init_from) if init_from else None,
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


def continuation_problem(init_from: Path, cfg: DecoderTrainConfig) -> str | None:
    """Why the decoder in `init_from` cannot be continued with `cfg` (its layout or object codes differ), or None."""
    path = Path(init_from) / "projector.pt"
    if not path.exists():
        return f"{init_from}: no trained decoder there (projector.pt missing)"
    blob = torch.load(path, map_location="cpu", weights_only=True)
    for entry in blob["worlds"].values():
        theirs = entry["config"]
        kinds = {"interleave": "interleave", "codebook": "codebook", "code_chars": "write_codes"}
        differ = [k for k, c in kinds.items() if bool(theirs.get(k)) != bool(getattr(cfg, c))]
        if differ:
            flag = kinds[differ[0]].replace("_", "-")
            return (
                f"{init_from}: that decoder was trained {'with' if theirs.get(differ[0]) else 'without'} "
                f"--{flag}: continue it with the same options, or train a new one"
            )
    return None


def projector_state(projector: PlanProjector) -> dict:
    """The weights in fp16 (half the file); the codebook's buffers (its codes and ranking direction) as they are."""
    keep = {"codes", "code_dir"}
    return {k: v if k in keep else v.half() for k, v in projector.state_dict().items()}


def load_projectors(path: Path) -> dict[str, tuple[PlanProjector, dict]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name, entry in blob["worlds"].items():
        p = PlanProjector(**entry["config"])
        p.load_state_dict({k: v.float() for k, v in entry["state_dict"].items()})
        out[name] = (p.eval(), entry)
    return out
