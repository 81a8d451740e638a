"""The agent and its reader judged on queries: the cases of `ami-agent bench agent`, `bench reader` and
`bench guardrails`, and how each answer is judged (the simulator's validator, never the agent's own check)."""

from __future__ import annotations

import random

from ami_agent.reader import complete_state, facts_of, read_clauses
from ami_agent.reader_train import TRAIN, free_text
from ami_agent.services import blocksworld
from eval.guardrails import GuardrailCase, honours
from eval.heldout_phrasings import heldout_requests
from eval.suites import load_suite
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.errors import WorldError
from planner.worlds.generate import ProblemGenerator
from planner.worlds.pddl import load_domain, load_problem
from planner.worlds.plans import parse_plan_text, validate


def suite_cases(suite: str, planbench_dir=None, limit: int | None = None):
    """(name, the suite's own natural-language query, problem) for each instance that has a query, and the domain."""
    insts = [i for i in load_suite(suite, planbench_dir, limit) if i.query]
    if not insts:
        return [], None
    d = load_domain(insts[0].domain_path)
    return [(i.name, i.query, load_problem(i.problem_path, d)) for i in insts], d


def heldout_cases(n: int):
    """n generated problems said in phrasings the reader never trained on (eval/heldout_phrasings.py)."""
    d, vb = blocksworld()
    return [(f"heldout-{k}", t, p) for k, (t, p) in enumerate(heldout_requests(d, vb, n), start=1)], d


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


def reader_cases(phrasing: str, n: int) -> list:
    """(text, problem) pairs: held-out phrasings, or the training phrasings on fresh problems."""
    d, vb = blocksworld()
    if phrasing == "heldout":
        return heldout_requests(d, vb, n)
    rng = random.Random(7)  # not the training seed: fresh problems and sentences
    gen = ProblemGenerator(d, None, rng)
    names = blocksworld_names(d)
    cases = []
    for _ in range(n):
        p = gen.sample(rng.randint(3, 5))
        cases.append((free_text(vb, p.init, p.goal, TRAIN, rng, names)[0], p))
    return cases


def read_requests(backend, tokenizer, reader, cases, phrasing: str) -> list[dict]:
    """The reader adapter's reading of each request (constrained as the agent reads), against the problem."""
    vb = reader.vb
    names = blocksworld_names(vb.domain)
    read = read_clauses(backend, tokenizer, [t for t, _ in cases], vb=vb)
    rows = []
    for k, ((text, p), sentences) in enumerate(zip(cases, read), start=1):
        facts = facts_of(sentences, vb)
        init, goal, error = set(), set(), None
        if facts is None:
            error = (
                "no start or no goal read, a clause places a block it does not name, or an answer is no fact"
            )
        else:
            init, goal = facts
            init = complete_state(init, sorted({o for a in init | goal for o in a[1:]}), names)
        want = {("start", a) for a in p.init} | {("goal", a) for a in p.goal}
        got = {("start", a) for a in init} | {("goal", a) for a in goal}
        rows.append(
            {
                "request": f"{phrasing}-{k}",
                "text": text,
                "exact": error is None and got == want,
                "error": error,
                "missing": sorted(f"{sec}: {vb.fact(a)}" for sec, a in want - got),
                "extra": sorted(f"{sec}: {vb.fact(a)}" for sec, a in got - want),
                "clauses": [[c, a] for _, clauses in sentences for c, a in clauses],
            }
        )
    return rows
