"""`ami-agent train decoder`: the plan projectors (one per world model) and one LoRA adapter, trained jointly on
generated (problem, latent plan) -> answer pairs. Only the answer's tokens carry loss; the base model stays frozen.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from decoder.data import Example, ExampleSampler, World
from decoder.projector import PlanProjector, assemble

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class DecoderTrainConfig:
    rank: int = 16
    alpha: int = 32
    lr: float = 1e-3  # LoRA
    projector_lr: float = 2e-3
    batch: int = 8
    minutes: float = 40.0
    max_steps: int = 100_000
    warmup: int = 10
    objects: tuple[int, int] = (3, 5)
    text_fraction: float = 0.25
    seed: int = 0


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


def example_embeds(ex: Example, projector: PlanProjector, tokens: Tokens, embed) -> torch.Tensor:
    return assemble(ex.prompt, tokens, embed, projector.slots(ex.plan, ex.prompt))


def batch_tensors(examples: list[Example], projectors, tokens: Tokens, embed, end_id: int):
    """Right-padded inputs_embeds (B, L, H), attention mask and labels (-100 outside the answers)."""
    seqs, labels = [], []
    for ex in examples:
        prompt = example_embeds(ex, projectors[ex.world], tokens, embed)
        ans = tokens(ex.prompt.answer) + [end_id]
        ans_emb = embed(torch.tensor(ans, dtype=torch.long))
        seqs.append(torch.cat([prompt, ans_emb.to(prompt.dtype)], 0))
        labels.append([-100] * prompt.shape[0] + ans)
    L = max(s.shape[0] for s in seqs)
    h = seqs[0].shape[1]
    x = torch.zeros(len(seqs), L, h, dtype=seqs[0].dtype)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    y = torch.full((len(seqs), L), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labels)):
        x[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
        y[i, : len(lab)] = torch.tensor(lab)
    return x, mask, y


def train_decoder(
    worlds: list[World],
    model_dir: Path,
    out_dir: Path,
    cfg: DecoderTrainConfig,
    command: str = "",
    log=None,
) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    emb_matrix = base.get_input_embeddings().weight
    rms = float(emb_matrix.float().pow(2).mean().sqrt())
    hidden = emb_matrix.shape[1]
    lcfg = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    model = get_peft_model(base, lcfg)
    embed = model.get_input_embeddings()
    projectors = {
        w.name: PlanProjector(w.model.cfg.dim, hidden, rms, max_arity=w.model.vocab.max_arity) for w in worlds
    }
    lora_params = [p for p in model.parameters() if p.requires_grad]
    proj_params = [p for pr in projectors.values() for p in pr.parameters()]
    opt = torch.optim.AdamW(
        [{"params": lora_params, "lr": cfg.lr}, {"params": proj_params, "lr": cfg.projector_lr}],
        weight_decay=0.0,
    )
    base_lrs = [cfg.lr, cfg.projector_lr]
    tokens = Tokens(tok)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    sampler = ExampleSampler(worlds, cfg.objects, cfg.text_fraction, cfg.seed)
    budget = cfg.minutes * 60
    history: list[dict] = []
    model.train()
    step, t0, ema = 0, time.time(), None
    n_lora = sum(p.numel() for p in lora_params)
    n_proj = sum(p.numel() for p in proj_params)
    log(
        f"training decoder: LoRA rank {cfg.rank} ({n_lora / 1e6:.2f}M params), projectors {n_proj / 1e6:.2f}M, "
        f"worlds {', '.join(w.name for w in worlds)}, budget {cfg.minutes:g} min"
    )
    while step < cfg.max_steps:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        frac = min(1.0, elapsed / budget)
        warm = min(1.0, (step + 1) / cfg.warmup)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        exs = [sampler.sample() for _ in range(cfg.batch)]
        x, mask, y = batch_tensors(exs, projectors, tokens, embed, end_id)
        out = model(inputs_embeds=x, attention_mask=mask, labels=y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params + proj_params, 1.0)
        opt.step()
        step += 1
        loss = float(out.loss)
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        if step % 10 == 0 or step == 1:
            el = time.time() - t0
            history.append(
                {"step": step, "loss": round(loss, 4), "loss_ema": round(ema, 4), "seconds": round(el, 1)}
            )
            log(
                f"step {step}  loss {loss:.4f} (ema {ema:.4f})  tokens/batch {int(mask.sum())}  "
                f"{el / step:.2f}s/step  {el / 60:.1f}/{cfg.minutes:g} min"
            )
    minutes = (time.time() - t0) / 60
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_decoder(model, projectors, worlds, out_dir)
    record = {
        "kind": "decoder",
        "base_model": str(model_dir.name),
        "worlds": {w.name: {"domain": w.domain.name, "checkpoint": str(w.checkpoint)} for w in worlds},
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
    }
    (out_dir / "decoder.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def save_decoder(model, projectors: dict[str, PlanProjector], worlds: list[World], out_dir: Path) -> None:
    adapter_dir = out_dir / "adapter"
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = p.data.to(torch.bfloat16)  # half the size; vLLM and transformers serve it in bf16
    model.save_pretrained(adapter_dir)
    blob = {
        "worlds": {
            w.name: {
                "config": projectors[w.name].config,
                "state_dict": {k: v.half() for k, v in projectors[w.name].state_dict().items()},
                "checkpoint": w.checkpoint.name,
                "domain": w.domain.name,
            }
            for w in worlds
        }
    }
    torch.save(blob, out_dir / "projector.pt")


def load_projectors(path: Path) -> dict[str, tuple[PlanProjector, dict]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name, entry in blob["worlds"].items():
        p = PlanProjector(**entry["config"])
        p.load_state_dict({k: v.float() for k, v in entry["state_dict"].items()})
        out[name] = (p.eval(), entry)
    return out
