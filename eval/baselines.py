"""The pure autoregressive baseline `ar-sft`: the base model with a LoRA adapter of the decoder's rank, fine-tuned on
the same kind of generated problems and plans the agent learned from (same worlds, same object counts), writing the
plan straight from the zero-shot query. Never trained on PlanBench instances."""

from __future__ import annotations

import random
from pathlib import Path

from decoder.lora import train_text_adapter
from eval.cases import zero_shot_query
from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve
from planner.worlds.plans import parse_plan_text
from planner.worlds.strips import Task

AR_SFT_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "ar-sft"
ADAPTER = "ar-sft"


def plan_answer(vb, steps) -> str:
    return "\n".join(vb.action(s) for s in steps)


def training_problems(worlds, objects=(3, 5), batch: int = 8, seed: int = 0):
    """The endless stream of (world, problem, optimal plan) ar-sft trains on, in order: one world per batch, worlds
    in turn (until 2026-11-28 each example drew its world). A batch's queries then share the domain description
    (~350 of ~450 prompt tokens), which the training loop computes once (decoder.lora.shared_prefix_loss: the
    batch's loss and gradients unchanged): 7 s a step instead of 22. Replayed by `python -m eval.overlap`."""

    rng = random.Random(seed)
    gens = [(w, ProblemGenerator(w.domain, None, rng)) for w in worlds]
    drawn = 0
    while True:
        w, gen = gens[(drawn // batch) % len(gens)]
        drawn += 1
        while True:
            p = gen.sample(rng.randint(*objects))
            r = solve(Task(w.domain, p))
            if r.status == "solved" and r.plan:
                break
        yield w, p, r.plan


def train_ar_sft(
    worlds,
    model_dir: Path,
    out_dir: Path,
    minutes: float = 40.0,
    objects=(3, 5),
    max_steps: int = 100_000,
    batch: int = 8,
    rank: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    command: str = "",
    log=None,
) -> dict:
    """worlds: decoder.data.World objects (domain + English); plans are the oracle's optimal plans."""

    stream = training_problems(worlds, objects, batch, seed)

    def make_pair() -> tuple[str, str]:
        w, p, plan = next(stream)
        steps = parse_plan_text("\n".join(plan), w.domain, p)
        return zero_shot_query(w.verbalizer, p), plan_answer(w.verbalizer, steps)

    extra = {
        "worlds": [w.name for w in worlds],
        "objects": list(objects),
        "batches": "one world per batch, worlds in turn; the shared query head computed once per batch",
    }
    return train_text_adapter(
        "ar-sft",
        make_pair,
        model_dir,
        out_dir,
        minutes,
        max_steps,
        batch,
        rank,
        lr,
        seed,
        None,
        command,
        extra,
        log,
    )
