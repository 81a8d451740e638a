"""planner/worlds/plans.py: the validator."""

from planner.worlds.oracle import solve
from planner.worlds.plans import parse_plan_text, validate
from planner.worlds.strips import Task


def test_validator_reports_first_failing_step(bw_domain, tower):
    plan = parse_plan_text("(unstack c b)\n(put-down c)\n(pick-up a)", bw_domain, tower)
    v = validate(bw_domain, tower, plan)
    assert not v.valid
    assert v.failed_step == 3 and v.failed_action == "(pick-up a)"
    assert set(v.unmet_preconditions) == {("clear", "a")}
    assert "step 3 (pick-up a): precondition not satisfied: (clear a)" == v.reason


def test_validator_goal_and_valid(bw_domain, tower):
    v = validate(bw_domain, tower, parse_plan_text("(unstack c b)\n(put-down c)", bw_domain, tower))
    assert not v.valid and v.failed_step is None and ("on", "a", "b") in v.unmet_goals
    r = solve(Task(bw_domain, tower))
    assert r.status == "solved"
    assert validate(bw_domain, tower, parse_plan_text("\n".join(r.plan), bw_domain, tower)).valid
    assert len(r.plan) == 6  # c down, b onto c, a onto b: 2 actions each
