"""Logistics requests in people's own words, each with the facts a careful reader takes from it (PDDL names: where
each truck, airplane and package starts, which city each location is in, the airports) and the goal, written by
hand apart from the typed reader (ami_agent/typed_reader.py): eval/data/free_logistics_requests.jsonl (40 requests,
12 styles) is held out, never used to tune; eval/data/free_logistics_dev.jsonl (40, 10 styles) is what the reader
was developed on, after one measurement as a held-out set. A request is read exactly when perception's facts (type
facts aside) and goal equal the written ones; it is answered right when the agent's plan is valid for the written
problem (judged by the simulator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from planner.worlds.errors import WorldError
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import parse_plan_text, validate

REQUESTS = Path(__file__).resolve().parent / "data" / "free_logistics_requests.jsonl"
DEV = REQUESTS.with_name("free_logistics_dev.jsonl")


@dataclass
class LogisticsCase:
    id: str
    style: str
    text: str
    init: frozenset  # facts other than type facts
    goal: frozenset


def _atom(fact: str) -> tuple[str, ...]:
    return tuple(fact.strip().strip("()").split())


def load_cases(path: Path = REQUESTS, limit: int | None = None) -> list[LogisticsCase]:
    cases = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            cases.append(
                LogisticsCase(
                    d["id"],
                    d.get("style", ""),
                    d["text"],
                    frozenset(_atom(f) for f in d["init"]),
                    frozenset(_atom(f) for f in d["goal"]),
                )
            )
    return cases[:limit] if limit else cases


def problem_of(case: LogisticsCase, domain: Domain, vb: Verbalizer) -> Problem:
    """The written problem, with the type facts its names imply."""
    objects = sorted({o for a in case.init | case.goal for o in a[1:]})
    init = frozenset(case.init | vb.type_facts(objects))
    return Problem(case.id, domain.name, {o: "object" for o in objects}, init, case.goal)


def judge_reading(case: LogisticsCase, vb: Verbalizer, kind: str, init, goal, question: str) -> dict:
    types = set(vb.config.object_types.values())  # the type facts the names imply, which requests never say
    said = frozenset(tuple(a) for a in init or () if len(a) > 2 or a[0] not in types)
    got_goal = frozenset(tuple(a) for a in goal or ())
    row = {"id": case.id, "style": case.style, "expect": "plan", "perceived": kind, "question": question}
    row["exact"] = kind == "problem" and said == case.init and got_goal == case.goal
    if kind == "problem":
        row["missing"] = sorted(" ".join(a) for a in case.init - said) + [
            "goal: " + " ".join(a) for a in sorted(case.goal - got_goal)
        ]
        row["extra"] = sorted(" ".join(a) for a in said - case.init) + [
            "goal: " + " ".join(a) for a in sorted(got_goal - case.goal)
        ]
    return row


def judge_answer(case: LogisticsCase, domain: Domain, vb: Verbalizer, res: dict) -> dict:
    status = res["status"]
    row = {"id": case.id, "style": case.style, "status": status, "right": False}
    if status == "solved":
        prob = problem_of(case, domain, vb)
        try:
            steps = parse_plan_text("\n".join((res.get("plan_record") or {}).get("plan", [])), domain, prob)
            row["right"] = validate(domain, prob, steps).valid
        except WorldError:
            row["right"] = False
    row["no_plan_to_reachable"] = status == "no_plan"  # every written request is solvable
    return row
