"""The pure autoregressive baseline `ar-sft`: the base model with a LoRA adapter of the decoder's rank, fine-tuned on
the same kind of generated problems and plans the agent learned from (same worlds, same object counts), writing the
plan straight from the zero-shot query. Never trained on PlanBench instances.

Blocksworld and mystery share one adapter (`checkpoints/ar-sft/adapter`), trained on the oracle's optimal plans of
3-5 blocks. A world added beside them (logistics) gets an adapter of its own (`checkpoints/ar-sft/<world>/adapter`),
trained the same way on its world model's problem sizes; its plans come from `solve_satisficing`, since
breadth-first search does not reach 20+ objects."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from decoder.lora import train_text_adapter
from eval.cases import zero_shot_query
from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve, solve_satisficing
from planner.worlds.plans import parse_plan_text
from planner.worlds.strips import Task

AR_SFT_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "ar-sft"
ADAPTER = "ar-sft"


def plan_answer(vb, steps) -> str:
    return "\n".join(vb.action(s) for s in steps)


def adapter_dir(world: str) -> Path:
    """The folder of the ar-sft adapter that answers a world's queries: its own where one was added for it."""
    own = AR_SFT_DIR / world
    return own if (own / "adapter" / "adapter_config.json").exists() else AR_SFT_DIR


def world_model_objects(world) -> tuple[int, int]:
    """The object counts a world's model trained its dynamics and read-outs on (the span of its recipe's stages but
    a critic-only one, whose problems are enumerated apart), from its record."""
    rec = json.loads(Path(world.checkpoint).with_suffix(".json").read_text())
    spans = [st["objects"] for st in rec["config"]["stages"] if st.get("train_only") != ["critic"]]
    return min(a for a, _ in spans), max(b for _, b in spans)


def training_problems(worlds, objects=(3, 5), batch: int = 8, seed: int = 0, solver=solve):
    """The endless stream of (world, problem, plan) ar-sft trains on (the plans `solver`'s: by default the oracle's
    optimal ones), in order: one world per batch, worlds
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
            r = solver(Task(w.domain, p))
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
    plans: str = "optimal",
) -> dict:
    """worlds: decoder.data.World objects (domain + English). plans: "optimal" (the oracle's breadth-first search)
    or "satisficing" (`solve_satisficing`, for worlds too large for it)."""

    if plans not in ("optimal", "satisficing"):
        raise ValueError(f"plans: optimal or satisficing, got {plans!r}")
    # a generated problem whose plan takes the satisficing search over 30 s is drawn again
    solver = solve if plans == "optimal" else functools.partial(solve_satisficing, time_limit=30.0)
    stream = training_problems(worlds, objects, batch, seed, solver)

    def make_pair() -> tuple[str, str]:
        w, p, plan = next(stream)
        steps = parse_plan_text("\n".join(plan), w.domain, p)
        return zero_shot_query(w.verbalizer, p), plan_answer(w.verbalizer, steps)

    extra = {
        "worlds": [w.name for w in worlds],
        "objects": list(objects),
        "plans": plans,
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


def train_added_ar_sft(world, model_dir: Path, minutes: float = 40.0, command: str = "", log=None) -> dict:
    """ar-sft for a world added beside blocksworld and mystery: an adapter of its own in checkpoints/ar-sft/<world>,
    trained as the shared one (same minutes, batch, rank, learning rate) on problems of its world model's sizes with
    satisficing plans."""

    return train_ar_sft(
        [world],
        model_dir,
        AR_SFT_DIR / world.name,
        minutes=minutes,
        objects=world_model_objects(world),
        command=command,
        log=log,
        plans="satisficing",
    )
