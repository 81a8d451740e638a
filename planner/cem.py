"""The second actor: the cross-entropy method over discrete action sequences, in latent space.

A distribution over actions for each step of the plan (one categorical per step, uniform at first) is sampled into
a population of sequences; each sequence is rolled out by the learned predictor, batched, from the encoded start
state. At each step an action is drawn only among those the applicability head deems possible in that sequence's
predicted state; a sequence stops when the task energy says the goal holds and dies when a guardrail says it is
broken. Sequences are scored by their energies (steps, feasibility, and for those that did not reach the goal the
task energy and the critic's steps-to-go at their end); the best (elite) sequences re-estimate each step's
categorical, smoothed, and the next population is drawn. It imports nothing from the symbolic simulator.

Beam search (planner/search.py) is the default actor; CEM is the alternative the issue asks for, useful where a
plan can be found by refining whole sequences rather than expanding states one depth at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from planner.energies import CriticEnergy, FeasibilityEnergy, Guardrail, StepView, TaskEnergy
from planner.latent import LatentWorld
from planner.search import PlanResult, _Node, _result


@dataclass
class CEMConfig:
    population: int = 128
    elite_fraction: float = 0.1
    iterations: int = 20
    horizon: int = 0  # 0: from the critic's steps-to-go estimate at the start (x1.5 + 2, at least 4)
    max_depth: int = 60
    smoothing: float = 0.7  # weight of the elites' frequencies in each update
    time_limit: float = 30.0
    applicable_threshold: float = 0.5
    snap: bool = True  # re-encode each predicted state from its decoded facts, as beam search does
    task_weight: float = 1.0
    critic_weight: float = 1.0
    feasibility_weight: float = 1.0
    patience: int = 2  # iterations without a shorter plan before stopping, once one is found
    seed: int = 0


def _rollout(world: LatentWorld, root, probs_by_step, goal, guardrails, cfg: CEMConfig, gen):
    """Samples `population` sequences; returns actions (K, H), lengths (K,) (H+1: never reached the goal),
    alive (K,), feasibility sums (K,), end latents (K, ...), end fact probabilities (K, F)."""
    K, H = cfg.population, probs_by_step.shape[0]
    task = TaskEnergy("task", cfg.task_weight, goal=list(goal))
    feas = FeasibilityEnergy("feasibility", cfg.feasibility_weight)
    lat = root.expand(K, *root.shape[1:]).clone()
    actions = torch.full((K, H), -1, dtype=torch.long)
    length = torch.full((K,), H + 1, dtype=torch.long)
    alive = torch.ones(K, dtype=torch.bool)
    feas_sum = torch.zeros(K)
    probs = world.fact_probs(lat)
    for t in range(H):
        active = alive & (length > H)  # still walking
        if not active.any():
            break
        idx = active.nonzero().flatten()
        app = world.applicable_probs(lat[idx])  # (A, M)
        allowed = app > cfg.applicable_threshold
        none = ~allowed.any(1)
        if none.any():  # the model sees no applicable action: its best guess only
            allowed[none, app[none].argmax(1)] = True
        w = probs_by_step[t].unsqueeze(0).expand_as(app) * allowed
        w = torch.where(w.sum(1, keepdim=True) > 0, w, allowed.float())
        a = torch.multinomial(w, 1, generator=gen).flatten()
        nxt = world.step(lat[idx], a)
        p = world.fact_probs(nxt)
        if cfg.snap:
            nxt = world.encode([(q > 0.5).nonzero().flatten().tolist() for q in p])
            p = world.fact_probs(nxt)
        lat[idx], probs[idx] = nxt, p
        actions[idx, t] = a
        view = StepView(p, a, app[torch.arange(len(idx)), a])
        feas_sum[idx] += feas(view)
        broken = torch.zeros(len(idx), dtype=torch.bool)
        for g in guardrails:
            broken |= g.violated(view)
        alive[idx[broken]] = False
        done = task.satisfied(view) & ~broken
        length[idx[done]] = t + 1
    return actions, length, alive, feas_sum, lat, probs


def cem_search(
    world: LatentWorld,
    init_facts: list[int],
    goal: list[int],
    guardrails: list[Guardrail] = (),
    cfg: CEMConfig | None = None,
) -> PlanResult:
    cfg = cfg or CEMConfig()
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    task = TaskEnergy("task", cfg.task_weight, goal=list(goal))
    critic = CriticEnergy("critic", cfg.critic_weight)
    root = world.encode([list(init_facts)])
    root_probs = world.fact_probs(root)
    if bool((root_probs[0, goal] > 0.5).all()):
        node = _Node(root, (), (), 0.0, ())
        r = _result(world, root, node, 0, 0, t0)
        r.reason = "the goal already holds"
        return r
    H = cfg.horizon
    if H <= 0:
        est = float(world.steps_to_go(root, goal)[0]) if cfg.critic_weight else 8.0
        H = max(4, int(est * 1.5) + 2)
    H = min(H, cfg.max_depth)
    M = world.n_actions
    probs_by_step = torch.full((H, M), 1.0 / M)
    n_elite = max(2, int(cfg.population * cfg.elite_fraction))
    best: tuple[int, float, list[int]] | None = None  # (length, cost, actions)
    stale = generated = 0
    broken_any = False
    iterations = 0
    for _ in range(cfg.iterations):
        iterations += 1
        actions, length, alive, feas_sum, lat, probs = _rollout(
            world, root, probs_by_step, goal, guardrails, cfg, gen
        )
        generated += int((actions >= 0).sum())
        broken_any |= bool((~alive).any())
        solved = alive & (length <= H)
        cost = length.float() + feas_sum
        if (~solved).any():  # unfinished sequences: how far from the goal they ended
            view = StepView(probs, torch.zeros(len(probs), dtype=torch.long), torch.ones(len(probs)))
            rest = task(view) * task.weight
            if cfg.critic_weight:
                rest = rest + critic.weight * world.steps_to_go(lat, goal)
            cost = torch.where(solved, cost, cost + rest)
        cost = torch.where(alive, cost, torch.full_like(cost, float("inf")))
        improved = False
        if solved.any():
            j = min(solved.nonzero().flatten().tolist(), key=lambda k: (int(length[k]), float(cost[k])))
            cand = (int(length[j]), float(cost[j]), actions[j, : int(length[j])].tolist())
            if best is None or cand[:2] < best[:2]:
                best, improved = cand, True
        stale = 0 if improved else stale + 1
        if best is not None and stale >= cfg.patience:
            break
        if time.perf_counter() - t0 > cfg.time_limit:
            break
        order = torch.argsort(cost)
        elite = order[:n_elite][torch.isfinite(cost[order[:n_elite]])]
        if len(elite) == 0:
            continue
        counts = torch.zeros(H, M)
        for k in elite.tolist():
            for t, a in enumerate(actions[k].tolist()):
                if a >= 0:
                    counts[t, a] += 1
        seen = counts.sum(1, keepdim=True)
        freq = torch.where(seen > 0, counts / seen.clamp(min=1), probs_by_step)
        probs_by_step = (1 - cfg.smoothing) * probs_by_step + cfg.smoothing * freq
        probs_by_step = probs_by_step.clamp(min=1e-4)
        probs_by_step /= probs_by_step.sum(1, keepdim=True)
    expansions = generated
    if best is None:
        out_of_time = time.perf_counter() - t0 > cfg.time_limit
        if broken_any and not out_of_time:
            reason = "no sampled plan reached the goal without breaking a guardrail"
        else:
            reason = f"CEM found no plan in {iterations} iterations of {cfg.population} sequences of up to {H} steps"
        return PlanResult(
            "no_plan",
            reason=reason,
            expansions=expansions,
            generated=generated,
            seconds=time.perf_counter() - t0,
            budget_spent=out_of_time,
        )
    terms = _step_terms(world, root, best[2], goal, guardrails, cfg)
    node = _Node(root, (), tuple(best[2]), best[1], tuple(terms))
    return _result(world, root, node, expansions, generated, t0)


def _step_terms(world, root, actions: list[int], goal, guardrails, cfg: CEMConfig) -> list[dict]:
    """Each energy term at each step of the chosen sequence (what the plan record reports)."""
    task = TaskEnergy("task", cfg.task_weight, goal=list(goal))
    feas = FeasibilityEnergy("feasibility", cfg.feasibility_weight)
    lat, out = root, []
    for a in actions:
        app = world.applicable_probs(lat)
        act = torch.tensor([a])
        lat = world.step(lat, act)
        p = world.fact_probs(lat)
        if cfg.snap:
            lat = world.encode([(p[0] > 0.5).nonzero().flatten().tolist()])
            p = world.fact_probs(lat)
        view = StepView(p, act, app[:, a])
        terms = {"task": task(view), "feasibility": feas(view)}
        for g in guardrails:
            terms[f"guardrail:{g.name}"] = g(view)
        out.append({k: round(float(v[0]), 4) for k, v in terms.items()})
    return out
