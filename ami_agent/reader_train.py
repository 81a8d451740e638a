"""Training the free-phrasing reader (ami_agent/reader.py): whole requests from the procedural generator
(ami_agent/describe.py), each paired with its reading. Every step draws fresh requests: the reader never sees the
same table said the same way twice."""

from __future__ import annotations

import random
from pathlib import Path

from ami_agent.describe import generate
from ami_agent.reader import SYSTEM, Names
from decoder.lora import train_text_adapter
from planner.worlds.nl import Verbalizer

# the generator draws blocks from the world's first 12 colours, PlanBench's: the committed reader's recipe (the
# world's English names blocks 13-30 too, for large problems in PlanBench's phrasing)
PALETTE = 12


def palette(vb: Verbalizer) -> list[str]:
    return list(Names(vb).obj)[:PALETTE]


def training_pairs(vb: Verbalizer, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n generated requests, as (text, reading)."""
    rng = random.Random(seed)
    colours = palette(vb)
    return [((r := generate(rng, colours)).text, r.reading) for _ in range(n)]


def train_reader(
    vb: Verbalizer,
    model_dir: Path,
    out_dir: Path,
    minutes: float = 40.0,
    max_steps: int = 100_000,
    batch: int = 8,
    rank: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    command: str = "",
    log=None,
) -> dict:
    """The recipe of checkpoints/reader: 40 minutes of generated requests of 2-8 blocks, read whole."""
    rng = random.Random(seed)
    colours = palette(vb)

    def make_pair() -> tuple[str, str]:
        r = generate(rng, colours)
        return r.text, r.reading

    extra = {
        "blocks": [2, 8],
        "generator": "ami_agent/describe.py",
        "evaluation": "ami-agent bench reader: requests written apart from this generator, never trained on",
        "unit": "one whole request -> its reading (start, goal, rules)",
    }
    return train_text_adapter(
        "reader", make_pair, model_dir, out_dir, minutes, max_steps, batch, rank, lr, seed, SYSTEM, command,
        extra, log,
    )  # fmt: skip
