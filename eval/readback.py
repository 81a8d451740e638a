"""Does a world model read states of more objects than it trained on? Encode random generated states of each size,
read the facts back through the probe and compare with the true ones; predict one step of a random applicable action
and compare the decoded next state; compare the applicability head's set with the true one. The simulator draws
the states and judges; the model only encodes, predicts and reads.

`walk_start=N` reads states reached by 0..N random steps from the generated ones instead (in blocksworld a
generated state always has the hand empty; a search reaches the others too, and re-encodes each state it reaches).
A model whose encoder had trained on generated states only read those exactly and predicted one step from a reached
state exactly 120 times in 240 (docs/results.md)."""

from __future__ import annotations

import json
import random
import sys

import torch

from planner.data import TrajectorySampler
from planner.latent import EnsembleWorld


def readback(
    model, domain, sizes: list[int], ensemble: int = 5, states: int = 40, seed: int = 0, walk_start: int = 0
) -> list[dict]:
    """Per size: the share of `states` random states read back exactly (`encoded`), of next states predicted exactly
    (`one_step`, no re-encoding) and of applicable-action sets read exactly (`applicable`), averaging `ensemble`
    identity draws of the model. `walk_start`: the states are reached by 0..walk_start random steps from generated
    ones (0: the generated states themselves)."""
    out = []
    for n in sizes:
        sampler = TrajectorySampler(
            domain, model.vocab, rng=random.Random(seed * 1000 + n), walk_start=walk_start
        )
        trajs, symbols = sampler.batch(n, states, 1, 0.0)
        objects = list(trajs[0].objects)
        if any(t.objects != trajs[0].objects for t in trajs):
            raise ValueError(f"the generated {n}-object problems do not share their objects")
        static = [f for f in symbols.facts if f[0] in model.vocab.static]
        world = EnsembleWorld(model, objects, list(range(ensemble)), static)
        z = world.encode([t.states[0] for t in trajs])
        z1 = world.step(z, torch.tensor([t.actions[0] for t in trajs]))
        truth = torch.zeros(len(trajs), len(world.symbols.facts), dtype=torch.bool)
        after = torch.zeros_like(truth)
        app = torch.zeros(len(trajs), world.n_actions, dtype=torch.bool)
        for i, t in enumerate(trajs):
            truth[i, t.states[0]] = after[i, t.states[1]] = app[i, t.applicable[0]] = True

        def exact(pred: torch.Tensor, true: torch.Tensor) -> float:
            return round((pred == true).all(1).float().mean().item(), 4)

        row = {
            "objects": n,
            "states": states,
            "ensemble": ensemble,
            "walk_start": walk_start,
            "encoded": exact(world.fact_probs(z) > 0.5, truth),
            "one_step": exact(world.fact_probs(z1) > 0.5, after),
            "applicable": exact(world.applicable_probs(z) > 0.5, app),
        }
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return out
