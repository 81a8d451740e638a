"""planner/mpc.py: act, observe, replan against an environment whose actions sometimes fail."""

import random

import pytest
from support import BW_CKPT


@pytest.mark.skipif(not BW_CKPT.exists(), reason="no trained blocksworld world model")
def test_mpc_replans_when_actions_slip(bw_domain):
    """With an environment attached the loop acts, observes and replans: in a world where actions sometimes do not
    happen, a plan made once goes stale, but the loop still ends in a goal state."""

    from planner.api import Planner
    from planner.mpc import run_mpc
    from planner.worlds.env import SimulatedEnvironment
    from planner.worlds.generate import ProblemGenerator
    from planner.worlds.plans import validate

    planner = Planner.load(BW_CKPT)
    p = ProblemGenerator(bw_domain, None, random.Random(3)).sample(4)
    env = SimulatedEnvironment(bw_domain, p, slip=0.3, seed=1)
    res = run_mpc(planner, env)
    assert res.status == "solved" and p.goal <= env.observe()
    slipped = sum(not ok for _, ok in env.trace)
    assert slipped > 0  # some actions slipped ...
    assert res.plan == ["(" + " ".join(a) + ")" for a, _ in env.trace]  # the record's plan: every action sent
    assert res.reason == f"{len(env.trace)} plan(s), {slipped} action(s) the environment did not carry out"
    carried_out = [a for a, ok in env.trace if ok]  # ... and the loop replanned after each step
    assert validate(bw_domain, p, carried_out).valid
    fixed = SimulatedEnvironment(bw_domain, p)  # a deterministic world: no action fails
    assert run_mpc(planner, fixed, execute=100).reason.startswith("1 plan(s), 0 action(s)")
