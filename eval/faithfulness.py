"""Faithfulness of the decoder: plan each problem with the latent planner, decode the latent plan into text, read
the actions back from the text and compare them with the planner's plan (and validate them in the problem)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from decoder.api import DecodeItem, Decoder, StateItem
from decoder.data import ExampleSampler
from decoder.projector import StateLatents
from eval.rows import write_jsonl
from planner.api import Planner
from planner.latent import LatentWorld
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
    predicted_end: frozenset | None = None  # the facts the world model reads off its predicted end state


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
        end = frozenset(r.predicted_facts[-1]) if r.status == "solved" and r.predicted_facts else None
        cases.append(Case(name, d, p, item, r.status, end))
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
    ablation: str = "as is",
) -> dict:
    """`ablation` (one of ABLATIONS): what is taken from the decoder's input (a shuffled input comes from another
    problem of the suite)."""
    todo = [c for c in cases if c.item is not None]
    if ablation != "as is":
        give = donors(len(todo))
        todo = [
            replace(c, item=ablate_plan(c.item, ablation, todo[give[k]].item)) for k, c in enumerate(todo)
        ]
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
    write_jsonl(out_path, rows)
    n = len(todo)
    return {
        "mode": mode,
        "ablation": ablation,
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


# ---- states: does the decoder say what the world model predicts? ----------------------------------------------

ABLATIONS = ("as is", "states zeroed", "states shuffled", "no operators or arguments")


@dataclass
class StateCase:
    name: str
    item: StateItem
    truth: frozenset  # the simulator's state
    steps: int  # the steps from the problem's initial state to it
    reference: frozenset | None = (
        None  # what the world model's own read-out (its fact probe) finds in the latent
    )


def generated_state_cases(
    worlds, counts, per_count: int, seed: int = 909, walk_steps: int = 24
) -> list[StateCase]:
    """`per_count` states for each object count in each world: the end of a random walk of 0 to `walk_steps`
    steps from a generated problem, as the world model predicts it along the walk; the truth from the simulator."""
    out = []
    for w in worlds:
        sampler = ExampleSampler([w], (3, 3), 0.0, random.Random(seed), walk_steps=walk_steps)
        for n in counts:
            sampler.objects = (n, n)
            for k in range(per_count):
                ex = sampler.sample_state(w)
                item = StateItem(w.name, w.verbalizer, ex.objects, ex.state)
                lw = LatentWorld(w.model, ex.objects, 0)
                probe = lw.facts_of(lw.fact_probs(ex.state.state.unsqueeze(0))[0])
                out.append(
                    StateCase(f"{w.name} N={n} #{k}", item, frozenset(ex.facts), len(ex.actions), probe)
                )
    return out


def end_state_cases(cases: list[Case]) -> list[StateCase]:
    """The predicted end state of each solved plan; the truth: the simulator's state after the plan."""
    out = []
    for c in cases:
        if c.item is None:
            continue
        steps = len(c.item.actions)
        truth = validate(c.domain, c.problem, c.item.actions).final_state
        out.append(StateCase(c.instance, StateItem.at(c.item, steps), truth, steps, c.predicted_end))
    return out


def _transplant(states: torch.Tensor, donor: torch.Tensor) -> torch.Tensor:
    """The donor's latents in the shape of `states` ((..., N+1, D)): its objects' rows cycled to N, its global row
    last, its first dimension (steps) cut or its last entry repeated."""
    n = states.shape[-2] - 1
    rows = donor[..., torch.arange(n) % (donor.shape[-2] - 1), :]
    out = torch.cat([rows, donor[..., -1:, :]], -2)
    if states.dim() == 3:
        idx = torch.arange(states.shape[0]).clamp(max=donor.shape[0] - 1)
        out = out[idx]
    return out


def ablate_state(state: StateLatents, kind: str, donor: StateLatents) -> StateLatents:
    if kind == "states zeroed":
        return replace(state, state=torch.zeros_like(state.state))
    if kind == "states shuffled":
        return replace(state, state=_transplant(state.state, donor.state))
    return state  # a described state carries no operator or argument vectors


def ablate_plan(item: DecodeItem, kind: str, donor: DecodeItem) -> DecodeItem:
    p = item.plan
    if kind == "states zeroed":
        p = replace(p, states=torch.zeros_like(p.states))
    elif kind == "states shuffled":
        p = replace(p, states=_transplant(p.states, donor.plan.states))
    elif kind == "no operators or arguments":
        p = replace(p, operators=torch.zeros_like(p.operators), arguments=[[] for _ in p.arguments])
    return replace(item, plan=p)


def donors(n: int, seed: int = 5) -> list[int]:
    """A derangement of range(n): each case's donor is another case (seeded)."""
    if n < 2:
        return list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]


def fact_scores(said: frozenset, truth: frozenset) -> tuple[int, int, int]:
    """(facts said that hold, facts said, facts that hold)."""
    return len(said & truth), len(said), len(truth)


def state_accuracy(
    decoder,
    cases: list[StateCase],
    ablation: str = "as is",
    out_path: Path | None = None,
    chunk: int = 64,
    log=None,
) -> dict:
    """Descriptions judged against the simulator's state: exactly right (every fact, nothing more), fact precision
    and recall; beside them how often the world model's own read-out of the same latent state is exactly right (what
    the latent holds) and how often the description says just what that read-out says. `chance`: the same scores for another case's true state said instead (objects matched by position,
    donors as the shuffled ablation's): what a describer that ignores the latents would score."""
    give = donors(len(cases))
    exact = hit = said = held = agree = model_exact = 0
    c_exact = c_hit = c_said = 0
    rows = []
    t0 = time.perf_counter()
    for i in range(0, len(cases), chunk):
        part = list(range(i, min(i + chunk, len(cases))))
        items = [
            replace(
                cases[j].item, state=ablate_state(cases[j].item.state, ablation, cases[give[j]].item.state)
            )
            for j in part
        ]
        for j, d in zip(part, decoder.describe(items)):
            c = cases[j]
            h, s_, t = fact_scores(d.facts, c.truth)
            ok = d.facts == c.truth and not d.unread
            exact, hit, said, held = exact + ok, hit + h, said + s_, held + t
            agree += c.reference is not None and d.facts == c.reference and not d.unread
            model_exact += c.reference == c.truth
            other = _renamed(cases[give[j]], c)
            ch, cs, _ = fact_scores(other, c.truth)
            c_exact, c_hit, c_said = c_exact + (other == c.truth), c_hit + ch, c_said + cs
            rows.append(
                {
                    "case": c.name,
                    "ablation": ablation,
                    "objects": len(c.item.objects),
                    "steps": c.steps,
                    "exact": ok,
                    "as_world_model_reads": c.reference is not None and d.facts == c.reference,
                    "world_model_exact": c.reference == c.truth,
                    "text": d.text,
                    "missing": sorted(" ".join(a) for a in c.truth - d.facts),
                    "wrong": sorted(" ".join(a) for a in d.facts - c.truth),
                    "unread": d.unread,
                    "tokens_out": d.tokens_out,
                }
            )
        if log:
            log(f"\rdescribing ({ablation}) [{part[-1] + 1}/{len(cases)}] exactly right {exact}   ", end="")
    if log:
        log("")
    write_jsonl(out_path, rows)
    n = len(cases)
    return {
        "ablation": ablation,
        "states": n,
        "exact": exact,
        "exact_rate": round(exact / n, 4) if n else None,
        "fact_precision": round(hit / said, 4) if said else 0.0,
        "fact_recall": round(hit / held, 4) if held else None,
        # the latent's own content: the world model's read-out of the same state, exactly right, and said alike
        "world_model_exact": model_exact,
        "as_world_model_reads": agree,
        "chance": {
            "exact_rate": round(c_exact / n, 4) if n else None,
            "fact_precision": round(c_hit / c_said, 4) if c_said else 0.0,
            "fact_recall": round(c_hit / held, 4) if held else None,
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _renamed(donor: StateCase, case: StateCase) -> frozenset:
    """The donor's true state with its objects renamed to the case's by position (cycled where it has fewer)."""
    objs, theirs = case.item.objects, donor.item.objects
    name = {o: objs[k % len(objs)] for k, o in enumerate(theirs)}
    return frozenset((a[0], *(name[x] for x in a[1:])) for a in donor.truth)
