"""The agent judged on queries: the cases of `ami-agent bench agent` (PlanBench's own phrasing) and `bench
guardrails`, and how each answer is judged (the simulator's validator, never the agent's own check). The
hand-written free phrasings are eval/free_requests.py."""

from __future__ import annotations

from eval.guardrails import GuardrailCase, honours
from eval.suites import load_suite
from planner.worlds.errors import WorldError
from planner.worlds.pddl import load_domain, load_problem
from planner.worlds.plans import parse_plan_text, validate


def suite_cases(suite: str, planbench_dir=None, limit: int | None = None):
    """(name, the suite's own natural-language query, problem) for each instance that has a query, and the domain."""
    insts = [i for i in load_suite(suite, planbench_dir, limit) if i.query]
    if not insts:
        return [], None
    d = load_domain(insts[0].domain_path)
    return [(i.name, i.query, load_problem(i.problem_path, d)) for i in insts], d


def _plan_of(domain, problem, res: dict):
    """The answer's plan (its plan record's labels), parsed in the problem; None when it cannot be."""
    rec = res.get("plan_record") or {}
    try:
        return parse_plan_text("\n".join(rec.get("plan", [])), domain, problem)
    except WorldError:
        return None


def judge_answer(domain, problem, name: str, res: dict, seconds: float) -> dict:
    steps = _plan_of(domain, problem, res) if res["status"] == "solved" else None
    valid = steps is not None and validate(domain, problem, steps).valid
    trace = res.get("trace", [])
    return {
        "instance": name,
        "status": res["status"],
        "valid": bool(valid),
        "seconds": round(seconds, 3),
        "plan": (res.get("plan_record") or {}).get("plan", []),
        "reply": res["reply"],
        "reader": next((t.get("reader") for t in trace if t["node"] == "perceive"), None),
        "decode_mode": next((t.get("chosen") for t in trace if t["node"] == "verify"), None),
        "objects": len(problem.objects),
        "node_seconds": {t["node"]: t.get("seconds") for t in trace},
    }


def judge_guardrail(domain, case: GuardrailCase, res: dict, seconds: float) -> dict:
    valid = honoured = None
    if res["status"] == "solved":
        steps = _plan_of(domain, case.problem, res)
        valid = steps is not None and validate(domain, case.problem, steps).valid
        honoured = steps is not None and honours(domain, case.problem, steps, case.constraint)
    guard = next((t for t in res.get("trace", []) if t.get("node") == "guard"), {})
    return {
        "instance": case.name,
        "constraint": case.constraint.to_dict(),
        "sentence": case.constraint.text,
        "feasible": case.feasible,
        "status": res["status"],
        "valid": valid,
        "honoured": honoured,
        "constraints_read": guard.get("constraints"),
        "seconds": round(seconds, 3),
        "plan": (res.get("plan_record") or {}).get("plan", []),
        "reply": res["reply"],
    }
