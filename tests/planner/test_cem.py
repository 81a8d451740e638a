"""planner/cem.py: the cross-entropy-method actor."""

import random

import pytest
from support import BW_CKPT, LineWorld

from planner.energies import ForbidFact


def test_cem_finds_the_shortest_plan_and_respects_guardrails():
    from planner.cem import CEMConfig, cem_search

    cfg = CEMConfig(population=64, iterations=10, seed=1)
    r = cem_search(LineWorld(), [1], [4], cfg=cfg)
    assert r.status == "solved" and r.actions == [("right",)] * 3
    assert r.latent_trajectory.shape == (4, 1, 6) and len(r.step_energies) == 3
    guard = ForbidFact("never-3", description="never stand on square 3", fact=3)
    blocked = cem_search(LineWorld(), [1], [4], [guard], cfg)
    assert blocked.status == "no_plan" and "guardrail" in blocked.reason
    assert cem_search(LineWorld(), [1], [0], [guard], cfg).actions == [("left",)]
    short = cem_search(LineWorld(), [0], [5], cfg=CEMConfig(population=8, iterations=2, horizon=3))
    assert short.status == "no_plan" and "no plan" in short.reason  # 5 steps do not fit in 3
    assert not short.budget_spent  # its iterations ended, not its time
    late = cem_search(
        LineWorld(), [0], [5], cfg=CEMConfig(population=8, iterations=2, horizon=3, time_limit=0)
    )
    assert late.status == "no_plan" and late.budget_spent


@pytest.mark.skipif(not BW_CKPT.exists(), reason="no trained blocksworld world model")
def test_cem_actor_plans_blocksworld_with_the_trained_model(bw_domain):

    from planner.api import Planner
    from planner.worlds.generate import ProblemGenerator
    from planner.worlds.plans import validate

    planner = Planner.load(BW_CKPT, actor="cem")
    gen = ProblemGenerator(bw_domain, None, random.Random(7))
    problems = [gen.sample(3) for _ in range(3)]
    results = [planner.plan(list(p.objects), p.init, p.goal) for p in problems]
    assert (
        sum(
            r.status == "solved" and validate(bw_domain, p, r.actions).valid
            for p, r in zip(problems, results)
        )
        >= 2
    )
    with pytest.raises(ValueError, match="actor"):
        Planner.load(BW_CKPT, actor="astar")
