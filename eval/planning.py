"""Running the latent planner on problems and judging its plans with the validator (the simulator judges; the
planner never sees it). Each problem gives an evaluation row (eval/rows.py)."""

from __future__ import annotations

import resource
import statistics
import time

from eval.rows import Row
from planner.api import Planner
from planner.mpc import run_mpc
from planner.record import PlanRecord
from planner.worlds.env import SimulatedEnvironment
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import validate


def _crashed(instance: str, system: str, e: Exception, t0: float, optimal_length: int | None) -> Row:
    rec = PlanRecord(
        instance, system, "error", reason=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0
    )
    return Row(rec, None, optimal_length)


def plan_and_judge(
    planner: Planner,
    domain: Domain,
    problem: Problem,
    instance: str,
    system: str = "ami-planner",
    optimal_length: int | None = None,
) -> Row:
    t0 = time.perf_counter()
    try:
        r = planner.plan(list(problem.objects), problem.init, problem.goal)
    except Exception as e:  # a crash on one problem is recorded, and the run goes on
        return _crashed(instance, system, e, t0, optimal_length)
    valid = validate(domain, problem, r.actions).valid if r.status == "solved" else None
    return Row(r.record(instance, system, time.perf_counter() - t0), valid, optimal_length)


def mpc_and_judge(
    planner: Planner,
    domain: Domain,
    problem: Problem,
    instance: str,
    slip: float = 0.0,
    seed: int = 0,
    execute: int = 1,
    optimal_length: int | None = None,
) -> Row:
    """The MPC loop against the simulator as the environment (planner/mpc.py): the record's plan is every action
    sent, in order; valid means the environment ended in a goal state."""
    env = SimulatedEnvironment(domain, problem, slip, seed)
    t0 = time.perf_counter()
    try:
        rec = run_mpc(planner, env, execute=execute, instance=instance)
    except Exception as e:  # a crash on one problem is recorded, and the run goes on
        return _crashed(instance, "ami-planner-mpc", e, t0, optimal_length)
    valid = problem.goal <= env.observe() if rec.status == "solved" else None
    return Row(rec, valid, optimal_length)


def summarize(judged: list[Row]) -> dict:
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
        # the valid plans' total length over their reference plans' (where the suite has them): 1.0 is as short
        "steps_over_reference": (
            round(sum(len(j.record.plan) for j in with_opt) / sum(j.optimal_length for j in with_opt), 4)
            if with_opt
            else None
        ),
        "median_seconds": round(statistics.median(times), 3) if times else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
