"""eval/guardrails.py: the guardrail benchmark's judge (the simulator's trajectory, exhaustive feasibility)."""

import random

from eval.guardrails import feasible, guardrail_cases, honours, pick_constraint, with_constraint
from planner.constraints import Constraint
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import parse_problem

PROBLEM = """(define (problem p) (:domain blocksworld-4ops)
  (:objects a b c)
  (:init (handempty) (clear b) (clear c) (on b a) (ontable a) (ontable c))
  (:goal (and (on a c))))"""


def _plan(*steps):
    return [tuple(s.split()) for s in steps]


def test_honours_checks_every_step_of_the_simulated_plan(bw_domain):
    p = parse_problem(PROBLEM, bw_domain)
    plan = _plan("unstack b a", "put-down b", "pick-up a", "stack a c")
    assert honours(bw_domain, p, plan, Constraint("forbid_fact", ("on", "b", "c")))
    assert not honours(bw_domain, p, plan, Constraint("forbid_fact", ("ontable", "b")))  # step 2 puts b down
    assert not honours(bw_domain, p, plan, Constraint("forbid_operator", ("put-down",)))
    assert not honours(bw_domain, p, plan, Constraint("forbid_object", ("b",)))
    assert not honours(bw_domain, p, plan, Constraint("require_fact", ("on", "b", "a")))
    # an inapplicable step is not honoured either
    assert not honours(bw_domain, p, _plan("pick-up a"), Constraint("forbid_object", ("c",)))


def test_feasibility_is_decided_by_search(bw_domain):
    p = parse_problem(PROBLEM, bw_domain)
    assert feasible(bw_domain, p, Constraint("forbid_fact", ("on", "b", "c")))  # b goes to the table
    # b must leave a, and resting on c would block a's place: only the table is left
    assert not feasible(bw_domain, p, Constraint("forbid_fact", ("ontable", "b")))
    assert not feasible(bw_domain, p, Constraint("forbid_object", ("b",)))  # b sits on a, which must move
    assert not feasible(bw_domain, p, Constraint("require_fact", ("on", "b", "a")))
    assert not feasible(bw_domain, p, Constraint("forbid_fact", ("ontable", "a")))  # broken at the start
    assert Constraint("forbid_operator", ("stack",)).breaks(("stack", "a", "c"), frozenset())


def test_cases_state_the_constraint_in_words(bw_domain):
    p = parse_problem(PROBLEM, bw_domain)
    vb = Verbalizer(bw_domain)
    text, c = pick_constraint(p, vb, random.Random(3))
    assert c.text == text and text.endswith(".")
    q = "[STATEMENT]\nAs initial conditions ...\n\nMy plan is as follows:\n\n[PLAN]"
    assert with_constraint(q, "Never move a.").index("Never move a.") < q.index("My plan")
    cases = guardrail_cases([(f"p{k}", "What is the plan?", p) for k in range(8)], bw_domain, vb, seed=1)
    assert all(cs.text.startswith("What is the plan?") and cs.constraint.text in cs.text for cs in cases)
    assert all(cs.feasible == feasible(bw_domain, p, cs.constraint) for cs in cases)
