"""Does the decoder read the soft plan, or re-plan from the problem text? Decode generated problems' latent plans
(`latent` mode, one view) of two kinds and count the answers that read back as the plan:

- `optimal`: the oracle's optimal plans (what the planner returns); the problem text alone often suggests them;
- `walk`: random walks whose end state gives the goal; their order cannot be guessed from the text, so only a
  decoder that reads the soft plan writes them back.

The generator and the oracle make the problems and plans (never PlanBench instances); the world model gives the latent
plan exactly as `ami-agent train decoder` builds it. Measured 2026-12-01 (README, "The decoder"): the committed
decoder of 2026-11-28 wrote back 56/60 optimal and 31/60 walk plans in blocksworld, 38/60 and 26/60 in mystery.

    python -m eval.reading [--decoder-dir checkpoints/decoder] [--problems 60] [--seed 777] [--backend vllm]
        [--world planbench:blocksworld ...] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

KINDS = {"optimal": 0.0, "walk": 1.0}  # kind -> share of random walks


def reading(decoder, worlds, problems: int = 60, seed: int = 777, objects=(3, 5), log=None) -> list[dict]:
    """One row per (world, kind): `faithful` of `problems` generated plans decoded alone in `latent` mode."""
    from decoder.api import DecodeItem
    from decoder.data import ExampleSampler

    rows = []
    for w in worlds:
        for kind, walks in KINDS.items():
            sampler = ExampleSampler([w], objects, 0.0, random.Random(seed), walk_fraction=walks)
            items = []
            for _ in range(problems):
                ex = sampler.sample(w, "latent")
                items.append(
                    DecodeItem(w.name, w.verbalizer, ex.objects, ex.init, ex.goal, ex.actions, ex.plan)
                )
            t0 = time.perf_counter()
            decoded = decoder.decode(items, "latent")
            row = {
                "world": w.name,
                "kind": kind,
                "problems": problems,
                "faithful": sum(d.faithful for d in decoded),
                "mean_steps": round(sum(len(it.actions) for it in items) / max(1, problems), 2),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            if log:
                log(f"{w.name} {kind}: {row['faithful']}/{problems} read back ({row['seconds']} s)")
    return rows


def main(argv=None) -> int:
    from ami_agent.cli.common import DEFAULT_DECODER_WORLDS, UserError, _decoder_world
    from decoder.api import DEFAULT_DIR, Decoder
    from decoder.backends import BackendError, make_backend
    from decoder.base_model import default_model_dir
    from decoder.train import load_projectors
    from planner.worlds.errors import WorldError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument(
        "--world", action="append", help="planbench:SUITE or DOMAIN.pddl[,CONFIG.yaml] (repeatable)"
    )
    ap.add_argument("--problems", type=int, default=60, help="generated problems per world and kind")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--objects", default="3-5")
    ap.add_argument("--backend", default="vllm", help="vllm | transformers")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows here (JSON)")
    a = ap.parse_args(argv)
    try:
        lo, hi = (int(x) for x in a.objects.split("-"))
        if a.problems < 1 or not 1 <= lo <= hi:
            raise ValueError(f"need --problems >= 1 and --objects LO-HI with 1 <= LO <= HI, got {a.objects}")
        if not (a.decoder_dir / "projector.pt").exists():
            raise ValueError(f"{a.decoder_dir}: no trained decoder there (projector.pt missing)")
        worlds = [_decoder_world(s, None) for s in (a.world or DEFAULT_DECODER_WORLDS)]
        trained = {
            name: entry["checkpoint"]
            for name, (_, entry) in load_projectors(a.decoder_dir / "projector.pt").items()
        }
        for w in worlds:
            if trained.get(w.name) != w.checkpoint.name:
                raise ValueError(
                    f"{a.decoder_dir} reads world {w.name!r} through "
                    f"{trained.get(w.name, 'no projector')}, not {w.checkpoint.name}: train it on this world model"
                )
        model_dir = default_model_dir()
        decoder = Decoder(make_backend(a.backend, model_dir), model_dir, a.decoder_dir)
    except (UserError, WorldError, BackendError, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = reading(
        decoder, worlds, a.problems, a.seed, (lo, hi), log=lambda m: print(m, file=sys.stderr, flush=True)
    )
    print(json.dumps(rows, indent=1))
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
