"""Faithfulness of the decoder: plan each problem with the latent planner, decode the latent plan into text, read
the actions back from the text and compare them with the planner's plan (and validate them in the problem)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from decoder.api import VOTES, DecodeItem, Decoder
from decoder.projector import PlanLatents
from planner.api import Planner
from planner.encoding import ProblemSymbols
from planner.search import PlanResult
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.pddl import Domain, Problem, load_domain, load_problem
from planner.worlds.plans import validate


def decode_item(world: str, planner: Planner, vb: Verbalizer, problem: Problem, r: PlanResult) -> DecodeItem:
    """The decoder's input for a solved plan: draw 0's latent plan, and one more view per other identity draw of
    the planner's ensemble (the same plan, seen under other object identities; `Decoder.decode(views=K)`)."""
    objects = list(problem.objects)
    symbols = ProblemSymbols(planner.model.vocab, objects)
    traj = r.latent_trajectory
    draws = r.identities.shape[0] if traj is not None and traj.dim() == 4 else 1
    views = [
        PlanLatents.from_plan(planner.model, r.identities[j], r.actions, symbols, traj, draw=j)
        for j in range(draws)
    ]
    return DecodeItem(world, vb, objects, problem.init, problem.goal, list(r.actions), views[0], views[1:])


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
    decoder: Decoder,
    cases: list[Case],
    mode: str,
    out_path: Path | None = None,
    chunk: int = 64,
    log=None,
    views: int = 1,
    vote_by: str = "answer",
) -> dict:
    """views: latent views decoded per plan and voted (`Decoder.decode`; `vote_by` gives the answer judged,
    and the record counts what each vote would give)."""
    todo = [c for c in cases if c.item is not None]
    faithful = valid = tokens_out = 0
    by_view = [0] * views  # each view's own answers, before the vote
    by_vote = dict.fromkeys(VOTES, 0)
    t0 = time.perf_counter()
    rows = []
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        grouped = decoder.decode_views([c.item for c in part], mode, views=views)
        for c, answers in zip(part, grouped):
            voted = {k: fn(c.item, answers) for k, fn in VOTES.items()}
            o = voted[vote_by]
            ok_valid = (
                validate(c.domain, c.problem, o.actions).valid if o.actions or not c.item.actions else False
            )
            faithful += o.faithful
            for k, v in voted.items():
                by_vote[k] += v.faithful
            for j, f in enumerate(o.view_faithful):
                by_view[j] += f
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
                    "views": o.views,
                    "agree": o.agree,
                    "vote": vote_by,
                    "view_read_back": [["(" + " ".join(a) + ")" for a in v.actions] for v in answers],
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
        with out_path.open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    n = len(todo)
    return {
        "mode": mode,
        "views": views,
        "vote": vote_by,
        "problems": len(cases),
        "planned": n,
        "faithful": faithful,
        "faithful_rate": round(faithful / n, 4) if n else None,
        "faithful_of_all": round(faithful / len(cases), 4) if cases else None,
        "faithful_by_view": by_view,  # each view decoded alone (view 0 is what views=1 decodes)
        "faithful_by_vote": by_vote,  # the same views voted by whole answers and step by step
        "read_back_valid": valid,
        "decode_seconds": round(seconds, 1),
        "tokens_out": tokens_out,
    }
