"""Running the latent planner on problems and judging its plans with the validator (the simulator judges; the
planner never sees it)."""

from __future__ import annotations

import random
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ami_agent.record import PlanRecord
from planner.api import Planner
from planner.worlds.generate import ProblemGenerator
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import validate


@dataclass
class Judged:
    record: PlanRecord
    valid: bool | None  # None when no plan was returned
    optimal_length: int | None


def _crashed(instance: str, system: str, e: Exception, t0: float, optimal_length: int | None) -> Judged:
    rec = PlanRecord(
        instance, system, "error", reason=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0
    )
    return Judged(rec, None, optimal_length)


def plan_and_judge(
    planner: Planner,
    domain: Domain,
    problem: Problem,
    instance: str,
    system: str = "ami-planner",
    optimal_length: int | None = None,
) -> Judged:
    t0 = time.perf_counter()
    try:
        r = planner.plan(list(problem.objects), problem.init, problem.goal)
    except Exception as e:  # a crash on one problem is recorded, and the run goes on
        return _crashed(instance, system, e, t0, optimal_length)
    rec = PlanRecord(
        instance,
        system,
        r.status,
        r.labels,
        r.reason,
        time.perf_counter() - t0,
        expansions=r.expansions,
        energies=r.energies,
    )
    valid = validate(domain, problem, r.actions).valid if r.status == "solved" else None
    return Judged(rec, valid, optimal_length)


def mpc_and_judge(
    planner: Planner,
    domain: Domain,
    problem: Problem,
    instance: str,
    slip: float = 0.0,
    seed: int = 0,
    execute: int = 1,
    optimal_length: int | None = None,
) -> Judged:
    """The MPC loop against the simulator as the environment (planner/mpc.py): the record's plan is every action
    sent, in order; valid means the environment ended in a goal state."""
    from planner.mpc import run_mpc
    from planner.worlds.env import SimulatedEnvironment

    env = SimulatedEnvironment(domain, problem, slip, seed)
    t0 = time.perf_counter()
    try:
        r = run_mpc(planner, env, execute=execute)
    except Exception as e:  # a crash on one problem is recorded, and the run goes on
        return _crashed(instance, "ami-planner-mpc", e, t0, optimal_length)
    note = f"{r.replans} plan(s), {r.failed} action(s) the environment did not carry out"
    rec = PlanRecord(
        instance,
        "ami-planner-mpc",
        r.status,
        r.labels,
        f"{r.reason}; {note}" if r.reason else note,
        time.perf_counter() - t0,
        expansions=r.expansions,
    )
    valid = problem.goal <= env.observe() if r.status == "solved" else None
    return Judged(rec, valid, optimal_length)


def generated_success(
    planner: Planner,
    domain: Domain,
    n_objects: list[int],
    per_size: int = 10,
    seed: int = 1234,
    seed_problems: list[Problem] | None = None,
) -> dict[str, float]:
    """Fraction of valid plans on freshly generated problems, per object count."""
    out = {}
    for n in n_objects:
        rng = random.Random(seed + n)
        if seed_problems:
            fitting = [p for p in seed_problems if len(p.objects) == n] or seed_problems
            gens = [ProblemGenerator(domain, p, rng) for p in fitting]
            problems = [rng.choice(gens).sample() for _ in range(per_size)]
        else:
            gen = ProblemGenerator(domain, None, rng)
            problems = [gen.sample(n) for _ in range(per_size)]
        ok = sum(
            bool(plan_and_judge(planner, domain, p, f"gen-{n}-{i}").valid) for i, p in enumerate(problems)
        )
        out[f"valid_{n}_objects"] = round(ok / per_size, 3)
    return out


def summarize(judged: list[Judged]) -> dict:
    n = len(judged)
    solved = [j for j in judged if j.record.status == "solved"]
    valid = [j for j in solved if j.valid]
    with_opt = [j for j in valid if j.optimal_length is not None]
    optimal = [j for j in with_opt if len(j.record.plan) <= j.optimal_length]
    times = [j.record.seconds for j in judged]
    return {
        "instances": n,
        "solved": len(solved),
        "valid": len(valid),
        "valid_rate": round(len(valid) / n, 4) if n else 0.0,
        "invalid_reported_solved": len(solved) - len(valid),
        "no_plan": sum(j.record.status == "no_plan" for j in judged),
        "errors": sum(j.record.status == "error" for j in judged),
        "optimal_of_valid": round(len(optimal) / len(with_opt), 4) if with_opt else None,
        "median_seconds": round(statistics.median(times), 3) if times else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def append_record(path: Path, judged: Judged) -> None:
    d = judged.record.to_dict()
    d["valid"] = judged.valid
    d["optimal_length"] = judged.optimal_length
    with path.open("a") as f:
        import json

        f.write(json.dumps(d) + "\n")
