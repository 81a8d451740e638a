"""How much of a PlanBench suite the ar-sft baseline met in training, and how each system does on the rest.

PlanBench's blocksworld problems have 3-5 blocks, and so do the generated problems every model here trains on; that
space is small, so many PlanBench problems also occur in the training stream up to renaming the blocks (never by
copying PlanBench: the generator draws them on its own). This replays ar-sft's training stream
(`eval.baselines.training_problems`, the same seed and order) and splits a suite into problems seen in it (same
initial state and goal after some renaming of the objects) and unseen ones; with a results folder of
`ami-agent eval` it prints each system's success on both parts, for all problems and for those of >= 8 optimal steps.

    python -m eval.overlap --results runs/eval-bw500 --suite planbench:blocksworld [--examples 2208]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from eval.baselines import training_problems
from eval.suites import DECODER_WORLDS, load_suite, world_for
from planner.worlds.pddl import load_problem


def _renamed(atoms, m: dict) -> tuple:
    return tuple(sorted((a[0], *(m[x] for x in a[1:])) for a in atoms))


def canonical(objects, init, goal) -> tuple:
    """(init, goal) under the renaming of the objects that sorts first: equal for problems equal up to renaming."""
    objs = sorted(objects)
    best = None
    for perm in itertools.permutations(range(len(objs))):
        m = {o: f"o{perm[i]}" for i, o in enumerate(objs)}
        key = (_renamed(init, m), _renamed(goal, m))
        if best is None or key < best:
            best = key
    return best


def seen_problems(worlds, examples: int, batch: int = 8, seed: int = 0) -> dict[str, set]:
    """world name -> canonical forms of the first `examples` problems of ar-sft's training stream."""

    seen: dict[str, set] = {w.name: set() for w in worlds}
    stream = training_problems(worlds, (3, 5), batch, seed)
    for k in range(examples):
        w, p, _ = next(stream)
        seen[w.name].add(canonical(p.objects, p.init, p.goal))
        if (k + 1) % 500 == 0:
            print(f"replayed {k + 1}/{examples} training problems", file=sys.stderr, flush=True)
    return seen


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="planbench:blocksworld")
    ap.add_argument("--results", type=Path, help="an `ami-agent eval` output folder (DIR/<system>.jsonl)")
    ap.add_argument("--examples", type=int, default=None, help="training examples (default: the record's)")
    ap.add_argument("--planbench-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    record = json.loads(
        (Path(__file__).resolve().parent.parent / "checkpoints/ar-sft/ar-sft.json").read_text()
    )
    examples = args.examples or record["examples_seen"]
    worlds = [world_for(w, args.planbench_dir) for w in DECODER_WORLDS]
    insts = load_suite(args.suite, args.planbench_dir, None)
    domain_name = {"planbench:mystery_blocksworld": "mystery-4ops"}.get(args.suite, "blocksworld-4ops")
    world = next(w for w in worlds if w.name == domain_name)
    seen = seen_problems(worlds, examples, record["config"]["batch"], record["config"]["seed"])[world.name]
    seen_names = set()
    for i in insts:
        p = load_problem(i.problem_path, world.domain)
        if canonical(p.objects, p.init, p.goal) in seen:
            seen_names.add(i.name)
    out = {"suite": args.suite, "problems": len(insts), "seen_in_ar_sft_training": len(seen_names)}
    out["training_examples"] = examples
    if args.results:
        for f in sorted(args.results.glob("*.jsonl")):
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            for part, keep in (
                ("all", lambda r: True),
                (">=8 steps", lambda r: (r.get("optimal_length") or 0) >= 8),
            ):
                rr = [r for r in rows if keep(r)]
                s = [r for r in rr if r["instance"] in seen_names]
                u = [r for r in rr if r["instance"] not in seen_names]
                out[f"{f.stem} {part}"] = {
                    "seen": f"{sum(bool(r.get('valid')) for r in s)}/{len(s)}",
                    "unseen": f"{sum(bool(r.get('valid')) for r in u)}/{len(u)}",
                }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
