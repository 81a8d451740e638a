"""Faithfulness of the decoder: plan each problem with the latent planner, decode the latent plan into text, read
the actions back from the text and compare them with the planner's plan (and validate them in the problem)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from decoder.api import DecodeItem, Decoder
from decoder.data import ExampleSampler
from planner.api import Planner
from planner.search import PlanResult
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.pddl import Domain, Problem, load_domain, load_problem
from planner.worlds.plans import validate


def decode_item(world: str, planner: Planner, vb: Verbalizer, problem: Problem, r: PlanResult) -> DecodeItem:
    """The decoder's input for a solved plan, as the agent builds it."""
    return DecodeItem.from_latents(
        world,
        vb,
        planner.model,
        list(problem.objects),
        problem.init,
        problem.goal,
        r.actions,
        r.latent_trajectory,
        r.identities,
    )


@dataclass
class Case:
    instance: str
    domain: Domain
    problem: Problem
    item: DecodeItem | None
    status: str


def plan_cases(instances, planner_for, log=None) -> list[Case]:
    """instances: (name, domain path, problem path, nl config path). planner_for(domain) -> (world name, Planner)."""
    cases = []
    domains: dict[Path, tuple[Domain, Verbalizer]] = {}
    for k, (name, dpath, ppath, nl) in enumerate(instances, start=1):
        if dpath not in domains:
            d = load_domain(dpath)
            domains[dpath] = (d, Verbalizer(d, NLConfig.load(nl) if nl else None))
        d, vb = domains[dpath]
        p = load_problem(ppath, d)
        world, planner = planner_for(d)
        r = planner.plan(list(p.objects), p.init, p.goal)
        item = decode_item(world, planner, vb, p, r) if r.status == "solved" else None
        cases.append(Case(name, d, p, item, r.status))
        if log:
            log(f"\rplanning [{k}/{len(instances)}] {name}: {r.status}   ", end="")
    if log:
        log("")
    return cases


def faithfulness(
    decoder: Decoder, cases: list[Case], mode: str, out_path: Path | None = None, chunk: int = 64, log=None
) -> dict:
    todo = [c for c in cases if c.item is not None]
    faithful = valid = tokens_out = 0
    t0 = time.perf_counter()
    rows = []
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        for c, o in zip(part, decoder.decode([c.item for c in part], mode)):
            ok_valid = (
                validate(c.domain, c.problem, o.actions).valid if o.actions or not c.item.actions else False
            )
            faithful += o.faithful
            valid += bool(ok_valid)
            tokens_out += o.tokens_out
            rows.append(
                {
                    "instance": c.instance,
                    "mode": mode,
                    "plan": ["(" + " ".join(a) + ")" for a in c.item.actions],
                    "read_back": ["(" + " ".join(a) + ")" for a in o.actions],
                    "faithful": o.faithful,
                    "valid": bool(ok_valid),
                    "text": o.text,
                    "tokens_in": o.tokens_in,
                    "tokens_out": o.tokens_out,
                    **({"raw_text": o.raw} if o.raw else {}),  # codes and all: a wrong code or a wrong name
                }
            )
        if log:
            log(
                f"\rdecoding ({mode}) [{min(i + chunk, len(todo))}/{len(todo)}] faithful {faithful}   ",
                end="",
            )
    if log:
        log("")
    seconds = time.perf_counter() - t0
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = len(todo)
    return {
        "mode": mode,
        "problems": len(cases),
        "planned": n,
        "faithful": faithful,
        "faithful_rate": round(faithful / n, 4) if n else None,
        "faithful_of_all": round(faithful / len(cases), 4) if cases else None,
        "read_back_valid": valid,
        "decode_seconds": round(seconds, 1),
        "tokens_out": tokens_out,
    }


KINDS = {"optimal": 0.0, "walk": 1.0}  # kind -> share of random walks


def walk_steps_for(objects: int) -> int:
    """The longest walk generated for a problem of that many objects: 14 up to 4 objects, 2 more per object after
    (30 at 12), so larger problems get the longer plans they take."""
    return max(14, 2 * objects + 6)


def generated_faithfulness(
    decoder, worlds, problems: int = 60, seed: int = 777, objects=(3, 5), log=None, walk_steps: int = 14
) -> list[dict]:
    """Does the decoder read the soft plan, or re-plan from the problem text? One row per (world, kind):
    `faithful` of `problems` generated plans decoded in `latent` mode. `optimal`: the oracle's optimal plans
    (what the planner returns; the text alone often suggests them); `walk`: random walks of up to `walk_steps`
    steps whose end state gives the goal (their order cannot be guessed from the text, so only a decoder that
    reads the soft plan writes them)."""
    rows = []
    for w in worlds:
        for kind, walks in KINDS.items():
            sampler = ExampleSampler(
                [w], objects, 0.0, random.Random(seed), walk_fraction=walks, walk_steps=walk_steps
            )
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
                "objects": list(objects),
                "problems": problems,
                "faithful": sum(d.faithful for d in decoded),
                "mean_steps": round(sum(len(it.actions) for it in items) / max(1, problems), 2),
                "max_steps": max((len(it.actions) for it in items), default=0),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            if log:
                log(
                    f"{w.name} {kind}, {'-'.join(map(str, sorted(set(objects))))} objects: "
                    f"{row['faithful']}/{problems} read back ({row['mean_steps']} steps on average, "
                    f"{row['seconds']} s)"
                )
    return rows
