"""The LoRA training loop shared by the decoder (projector + adapter) and the reader (adapter alone): the base model
frozen in bf16, adapters on the attention and MLP projections (never embed_tokens or lm_head, no modules_to_save:
vLLM could not serve those), a time budget with warm-up and cosine decay, progress lines, bf16 adapters on disk."""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.helpers import disable_input_dtype_casting
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.cache_utils import DynamicCache

from decoder.backends import default_dtype
from decoder.prompt import chat_prompt_ids

MIN_SHARED_PREFIX = 64  # tokens; below this the plain batched forward is as fast

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_model(model_dir: Path, rank: int, alpha: int, adapter: Path | None = None):
    """-> (tokenizer, PEFT model over the frozen base); `adapter`: a saved adapter to train on from (its own rank
    and alpha), its weights in float32 as a new adapter's. The base is bf16 where the hardware computes bf16
    natively, else float32 (`decoder.backends.default_dtype`: on an AVX2 CPU one bf16 backward step of the test's
    tiny training took 71 s)."""

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, default_dtype()))
    if adapter is not None:
        model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
        return tok, model
    cfg = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    return tok, get_peft_model(base, cfg)


def answer_loss(model, batch: dict) -> torch.Tensor:
    """The loss of model(**batch), with the vocabulary projection run only where a label is: the same mean
    cross-entropy as the plain forward (up to rounding), without the full (B, L, vocab) logits. Answers are a third
    of a decoder example's tokens, and the 49k-word projection with its softmax was about a fifth of a training
    step (profiled on 2 CPU cores)."""
    inputs = {k: batch[k] for k in ("input_ids", "inputs_embeds", "attention_mask") if k in batch}
    causal_lm = _causal_lm(model)
    hidden = causal_lm.model(**inputs, use_cache=False).last_hidden_state  # (B, L, H)
    return _label_loss(causal_lm, hidden, batch["labels"])


def _causal_lm(model):
    """The transformers causal LM under a PEFT wrapper (its layers carry the adapters)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _label_loss(causal_lm, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions, projecting only their hidden states."""
    target = labels[:, 1:]
    keep = target != -100
    logits = causal_lm.lm_head(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep])


def shared_prefix_loss(model, batch: dict) -> torch.Tensor:
    """The loss of model(**batch) computed once for the rows' common first prefix_len tokens: the prefix runs with
    batch 1, its keys and values are broadcast to every row (gradients flow back through them), then the rest runs
    on the cache. Same loss and gradients as the plain forward (up to rounding) at a fraction of the cost when the
    prompts share a long head (the ar-sft query's domain description is ~350 of ~450 tokens). The prefix must carry
    no labels (prompt tokens) and leave at least one token per row."""

    P = batch["prefix_len"]
    x, mask, y = batch["input_ids"], batch["attention_mask"], batch["labels"]
    B, L = x.shape
    if not (0 < P < L and bool((x[:, :P] == x[:1, :P]).all()) and bool((y[:, : P + 1] == -100).all())):
        raise ValueError(f"prefix_len {P}: the rows must share their first tokens, which carry no labels")
    causal_lm = _causal_lm(model)
    head = causal_lm.model(input_ids=x[:1, :P], use_cache=True).past_key_values  # no logits for the head
    kv = [(layer.keys.expand(B, -1, -1, -1), layer.values.expand(B, -1, -1, -1)) for layer in head.layers]
    cache = DynamicCache(ddp_cache_data=kv, config=model.config)
    pos = torch.arange(P, L, device=x.device).unsqueeze(0).expand(B, -1)
    full_mask = torch.cat([torch.ones(B, P, dtype=mask.dtype, device=x.device), mask[:, P:]], dim=1)
    hidden = causal_lm.model(
        input_ids=x[:, P:], attention_mask=full_mask, position_ids=pos, past_key_values=cache, use_cache=False
    ).last_hidden_state
    return _label_loss(causal_lm, hidden, y[:, P:])


def shared_head(prompts: list[list[int]]) -> int:
    """How many first tokens a batch's prompts share and can compute once (`shared_prefix_loss`); 0 when too few to
    be worth it. At least one prompt token per row stays after it, so every answer token is still predicted from
    inside the row's own part."""
    if len(prompts) < 2:
        return 0
    n = min(common_prefix_len(prompts), min(len(p) for p in prompts) - 1)
    return n if n >= MIN_SHARED_PREFIX else 0


def common_prefix_len(seqs: list[list[int]]) -> int:
    n = 0
    for column in zip(*seqs):
        if any(c != column[0] for c in column):
            break
        n += 1
    return n


@contextmanager
def bf16_adapters(model):
    """Run the fp32 adapters in bf16 beside the bf16 base: PEFT would otherwise cast every adapted layer's input
    to fp32 and its output back (measured: 288 instead of 208 tokens/s for a decoder step on 2 CPU cores). The
    adapters' weights and their optimiser stay fp32."""

    weight = model.get_input_embeddings().weight
    if weight.dtype != torch.bfloat16:  # a float32 base: the adapters run as they are
        yield
        return
    with torch.autocast(weight.device.type, dtype=torch.bfloat16), disable_input_dtype_casting(model):
        yield


@dataclass
class LoopResult:
    steps: int
    minutes: float
    final_loss_ema: float
    history: list[dict] = field(default_factory=list)


def train_loop(
    model, groups: list[dict], make_batch, minutes: float, max_steps: int, warmup: int = 10, log=None
):
    """groups: optimiser parameter groups with "lr"; make_batch() -> model kwargs (with labels)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    base_lrs = [g["lr"] for g in groups]
    budget = minutes * 60
    history: list[dict] = []
    model.train()
    step, t0, ema = 0, time.time(), None
    while step < max_steps and time.time() - t0 <= budget:
        frac = min(1.0, (time.time() - t0) / budget)
        warm = min(1.0, (step + 1) / warmup)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        batch = make_batch()
        aux = batch.pop("aux_loss", None)  # a loss the batch's own modules add (the decoder's state pointers)
        with bf16_adapters(model):
            loss_t = shared_prefix_loss(model, batch) if "prefix_len" in batch else answer_loss(model, batch)
        if aux is not None:
            loss_t = loss_t + aux
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        loss = loss_t.item()
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        if step % 10 == 0 or step == 1:
            el = time.time() - t0
            history.append(
                {"step": step, "loss": round(loss, 4), "loss_ema": round(ema, 4), "seconds": round(el, 1)}
            )
            # tokens run through the model: a shared head once, not once per row
            tokens = int(batch["attention_mask"].sum()) - (len(batch["attention_mask"]) - 1) * batch.get(
                "prefix_len", 0
            )
            log(
                f"step {step}  loss {loss:.4f} (ema {ema:.4f})  tokens/batch {tokens}  {el / step:.2f}s/step  "
                f"{el / 60:.1f}/{minutes:g} min"
            )
    model.eval()
    return LoopResult(step, (time.time() - t0) / 60, ema if ema is not None else float("nan"), history)


def save_adapter(model, folder: Path) -> None:
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = p.data.to(torch.bfloat16)  # half the size; vLLM and transformers serve it in bf16
    model.save_pretrained(folder)


# batches are padded to a multiple of this many positions: on CPU every new sequence length builds and caches new
# kernels, and with a new length at almost every step a reader training step slowed from 2.9 s to ~5 s over 40
# minutes on 2 Intel Xeon cores; padded, it stays at 2.7 s (the padding is masked and carries no labels)
PAD_MULTIPLE = 64


def pad_right(
    seqs: list[torch.Tensor], labels: list[list[int]], multiple: int = PAD_MULTIPLE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences of ids (L,) or embeddings (L, H) -> padded batch, attention mask, labels (-100 on padding)."""
    L = -(-max(s.shape[0] for s in seqs) // multiple) * multiple
    x = torch.zeros((len(seqs), L, *seqs[0].shape[1:]), dtype=seqs[0].dtype)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    y = torch.full((len(seqs), L), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labels)):
        x[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
        y[i, : len(lab)] = torch.tensor(lab)
    return x, mask, y


def train_text_adapter(
    kind: str,
    make_pair,
    model_dir: Path,
    out_dir: Path,
    minutes: float,
    max_steps: int = 100_000,
    batch: int = 8,
    rank: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    system: str | None = None,
    command: str = "",
    extra: dict | None = None,
    log=None,
) -> dict:
    """A LoRA adapter for a text -> text task: make_pair() -> (user text, answer text). Loss on the answer only.
    Writes out_dir/adapter and out_dir/<kind>.json (the training record)."""

    torch.manual_seed(seed)
    t_start = time.time()
    tok, model = lora_model(model_dir, rank, 2 * rank)
    end_id = tok.convert_tokens_to_ids("<|im_end|>")

    def make_batch() -> dict:
        prompts, seqs, labels = [], [], []
        for _ in range(batch):
            user, answer = make_pair()
            ids = chat_prompt_ids(tok, user, system)
            ans = tok(answer, add_special_tokens=False)["input_ids"] + [end_id]
            prompts.append(ids)
            seqs.append(torch.tensor(ids + ans))
            labels.append([-100] * len(ids) + ans)
        x, mask, y = pad_right(seqs, labels)
        out = {"input_ids": x, "attention_mask": mask, "labels": y}
        shared = shared_head(prompts)
        if shared:
            out["prefix_len"] = shared
        return out

    params = [p for p in model.parameters() if p.requires_grad]
    (log or print)(
        f"training {kind}: LoRA rank {rank} ({sum(p.numel() for p in params) / 1e6:.2f}M params), "
        f"budget {minutes:g} min"
    )
    res = train_loop(model, [{"params": params, "lr": lr}], make_batch, minutes, max_steps, 10, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_adapter(model, out_dir / "adapter")
    record = {
        "kind": kind,
        "base_model": Path(model_dir).name,
        "lora": {
            "rank": rank,
            "alpha": 2 * rank,
            "targets": LORA_TARGETS,
            "parameters": sum(p.numel() for p in params),
        },
        "config": {"minutes": minutes, "batch": batch, "lr": lr, "seed": seed, **(extra or {})},
        "base_dtype": str(model.get_input_embeddings().weight.dtype).removeprefix("torch."),
        "steps": res.steps,
        "examples_seen": res.steps * batch,
        "minutes_training": round(res.minutes, 2),
        "minutes_total": round((time.time() - t_start) / 60, 2),
        "final_loss_ema": round(res.final_loss_ema, 4),
        "history": res.history,
        "command": command,
    }
    (out_dir / f"{kind}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
