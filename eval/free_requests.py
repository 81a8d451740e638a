"""The free-phrasing benchmark: requests written by hand, apart from the reader's generator and its training
(eval/data/free_requests.jsonl, 18 styles; eval/data/free_followups.jsonl, threads of follow-ups), each with the
reading a careful person makes of it and what the right answer is. Never trained or tuned on.

A request is read exactly when perception's problem equals the written one (the start's places and the hand, the
goal, the rules), or, for requests that must be questioned (a block without a place, a contradiction, a goal that
cannot hold, an unknown block), when perception asks and its question names what the request expects. The answer
is right when the plan the agent gives is valid and keeps the rules (judged by the simulator), when it says
`no_plan` to a complete request whose goal no plan reaches, or when it asks the expected question."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from planner.constraints import Constraint
from planner.worlds.errors import WorldError
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import parse_plan_text, simulate, validate

DATA = Path(__file__).resolve().parent / "data"
REQUESTS = DATA / "free_requests.jsonl"
FOLLOWUPS = DATA / "free_followups.jsonl"
QUESTIONED = ("clarify", "contradiction", "impossible_goal")


@dataclass
class FreeCase:
    id: str
    style: str
    turns: list[str]
    expect: str  # plan | no_plan | clarify | contradiction | impossible_goal | chat
    init: frozenset = frozenset()  # places and the hand, in object names
    goal: frozenset = frozenset()
    constraints: frozenset = frozenset()  # (kind, target)
    ask_about: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.turns[-1]


def _atom(fact: str, obj) -> tuple:
    w = fact.split()
    if w[0] == "holding":
        return ("holding", obj(w[1]))
    if w[1:] == ["clear"]:
        return ("clear", obj(w[0]))
    if w[2] == "table":
        return ("ontable", obj(w[0]))
    return ("on", obj(w[0]), obj(w[2]))


def _rule(c: dict, obj) -> tuple:
    t = c["target"]
    if c["kind"] == "forbid_operator":
        return (c["kind"], tuple(t))
    if c["kind"] == "forbid_object":
        return (c["kind"], (obj(t[0]),))
    return (c["kind"], (t[0], *(obj(w) for w in t[1:])))


def load_cases(colours: dict[str, str], path: Path = REQUESTS, limit: int | None = None) -> list[FreeCase]:
    """colours: colour word -> object. Threads (free_followups) become one case whose turns are asked in order."""
    obj = lambda w: colours.get(w, w)  # noqa: E731  an unknown colour stays a word
    cases = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        final = d.get("final", d)
        init = frozenset(_atom(f, obj) for f in final.get("init", []))
        cases.append(
            FreeCase(
                id=d["id"],
                style=d.get("style", "followup"),
                turns=d.get("turns") or [d["text"]],
                expect=final["expect"],
                init=init,
                goal=frozenset(_atom(f, obj) for f in final.get("goal", [])),
                constraints=frozenset(_rule(c, obj) for c in final.get("constraints", [])),
                ask_about=[a.lower() for a in final.get("ask_about", d.get("ask_about", []))],
                objects=sorted({o for a in init for o in a[1:]}),
            )
        )
    return cases[:limit] if limit else cases


def places(facts) -> frozenset:
    """The facts that say where blocks are (on, on the table, in the hand): what a complete start is judged by."""
    return frozenset(a for a in facts if a[0] in ("on", "ontable", "holding"))


def _names_what_was_expected(question: str, case: FreeCase) -> bool:
    q = question.lower()
    words = {"goal": ("end", "goal", "want"), "start": ("now", "start", "where")}
    return all(any(w in q for w in words.get(a, (a,))) for a in case.ask_about)


def judge_reading(case: FreeCase, kind: str, problem: dict | None, question: str) -> dict:
    """Perception's outcome for the case: kind (problem/followup/clarify/chat), the problem it built (init, goal,
    constraints as lists) and its question."""
    row = {"id": case.id, "style": case.style, "expect": case.expect, "perceived": kind, "question": question}
    if case.expect == "chat":
        row["exact"] = kind == "chat"
        return row
    if case.expect in QUESTIONED:
        row["exact"] = kind == "clarify" and _names_what_was_expected(question, case)
        return row
    if kind not in ("problem", "followup") or problem is None:
        row["exact"] = False
        return row
    init = places(tuple(a) for a in problem["init"])
    goal = frozenset(tuple(a) for a in problem["goal"])
    cons = frozenset((c["kind"], tuple(c["target"])) for c in problem["constraints"])
    row.update(
        {
            "exact": init == places(case.init) and goal == case.goal and cons == case.constraints,
            "start_right": init == places(case.init),
            "goal_right": goal == case.goal,
            "rules_right": cons == case.constraints,
            "missing": sorted(" ".join(a) for a in (places(case.init) - init) | (case.goal - goal)),
            "extra": sorted(" ".join(a) for a in (init - places(case.init)) | (goal - case.goal)),
        }
    )
    return row


def pddl_problem(case: FreeCase, domain: Domain) -> Problem:
    """The written problem, its start completed (clear blocks, the hand), for the simulator to judge plans in."""
    init = set(case.init)
    below = {a[2] for a in init if a[0] == "on"}
    held = {a[1] for a in init if a[0] == "holding"}
    init |= {("clear", o) for o in case.objects if o not in below and o not in held}
    if not held:
        init.add(("handempty",))
    return Problem(case.id, domain.name, {o: "object" for o in case.objects}, frozenset(init), case.goal)


def judge_answer(case: FreeCase, domain: Domain, res: dict) -> dict:
    """The agent's answer to the case's last turn: right or not, and why."""
    status = res["status"]
    row = {"id": case.id, "style": case.style, "expect": case.expect, "status": status, "reply": res["reply"]}
    if case.expect == "chat":
        row["right"] = status == "chat"
    elif case.expect in QUESTIONED:
        row["right"] = status == "clarify" and _names_what_was_expected(res["reply"], case)
    elif case.expect == "no_plan":
        row["right"] = status == "no_plan"
    else:
        row["right"] = False
        if status == "solved":
            prob = pddl_problem(case, domain)
            try:
                steps = parse_plan_text(
                    "\n".join((res.get("plan_record") or {}).get("plan", [])), domain, prob
                )
            except WorldError:
                steps = None
            row["valid"] = steps is not None and validate(domain, prob, steps).valid
            row["honoured"] = steps is not None and all(
                _keeps(domain, prob, steps, c) for c in case.constraints
            )
            row["right"] = row["valid"] and row["honoured"]
    # the one wrong answer that must never happen: no_plan to a complete request whose goal is reachable
    row["no_plan_to_reachable"] = case.expect == "plan" and status == "no_plan"
    return row


def _keeps(domain: Domain, problem: Problem, steps, c: tuple) -> bool:
    constraint = Constraint(c[0], tuple(c[1]))
    states = [problem.init]
    for step in steps:
        states.append(simulate(domain, states[-1], step)[0])
    return not constraint.first_break([tuple(s) for s in steps], states)
