"""Follow-up questions about a plan's states, judged against the simulator (`ami-agent bench states`).

Each question of eval/data/state_questions.jsonl (written apart: see its README) is asked in a thread of its own,
after a PlanBench-phrased planning request for a generated 4-block problem (red, blue, orange and yellow; an optimal
plan of at least 4 steps, seeded by the question's place in the file). The answer is right when it names the state
the question means (before the plan, after step k, at the end) and says of that state, as the simulator has it,
what the question asks: the whole state, what is on a block or whether it is clear, where a block is, what the hand
holds, which blocks stand on the table.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from decoder.prompt import read_state
from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import Verbalizer
from planner.worlds.oracle import solve_optimal
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import parse_plan_text, validate

DATA = Path(__file__).resolve().parent / "data" / "state_questions.jsonl"
COLOURS = {"red": "a", "blue": "b", "orange": "c", "yellow": "d"}
ASK = "What is the plan to achieve my goal? Just give the actions in the plan."


@dataclass
class StateQuestionCase:
    id: str
    style: str
    question: str
    when: str | int  # "start" | "end" | k
    kind: str  # describe | on | under | clear | where | holding | table
    block: str | None  # PDDL name
    problem: Problem
    plan: list[tuple[str, ...]]
    request: str  # the planning request asked first


def load_cases(
    domain: Domain, vb: Verbalizer, path: Path = DATA, limit: int | None = None
) -> list[StateQuestionCase]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for k, r in enumerate(rows[:limit] if limit else rows):
        problem, plan = _problem(domain, random.Random(1000 + k))
        request = vb.statement(problem.init, problem.goal) + "\n" + ASK
        block = COLOURS[r["block"]] if r.get("block") else None
        out.append(
            StateQuestionCase(
                r["id"], r["style"], r["question"], r["when"], r["kind"], block, problem, plan, request
            )
        )
    return out


def _problem(domain: Domain, rng: random.Random) -> tuple[Problem, list[tuple[str, ...]]]:
    """A 4-block problem over a-d whose optimal plan has 4 to 8 steps."""
    gen = ProblemGenerator(domain, None, rng)
    for _ in range(500):
        p = gen.sample(4)  # objects a-d: the red, blue, orange and yellow blocks
        res = solve_optimal(domain, p)
        if res.status == "solved" and 4 <= len(res.plan) <= 8:
            return p, parse_plan_text("\n".join(res.plan), domain, p)
    raise RuntimeError("no 4-block problem with a plan of 4-8 steps in 500 draws")


def truth_at(domain: Domain, case: StateQuestionCase, t: int) -> frozenset:
    return validate(domain, case.problem, case.plan[:t]).final_state


_WHEN = re.compile(r"^(Before the first step|At the end \(after step (\d+)\)|After step (\d+))", re.M)


def said_step(reply: str) -> int | None:
    m = _WHEN.search(reply)
    if not m:
        return None
    return 0 if m.group(1).startswith("Before") else int(m.group(2) or m.group(3))


def judge(domain: Domain, vb: Verbalizer, case: StateQuestionCase, res: dict, plan_steps: int) -> dict:
    """Right: the reply's state is the one asked about and what it says of it is true, as the simulator has it.
    plan_steps: the length of the plan the agent gave (the end is after its last step)."""
    wanted = {"start": 0, "end": plan_steps}.get(case.when, case.when)
    reply = res.get("reply", "")
    step = said_step(reply)
    truth = (
        truth_at(domain, case, wanted) if isinstance(wanted, int) and wanted <= plan_steps else frozenset()
    )
    name = lambda o: "the " + vb.object_phrase(o)  # noqa: E731
    said = reply.lower()
    if case.kind == "describe":
        described = (
            reply.split("my world model predicts:", 1)[-1] if "my world model predicts:" in reply else ""
        )
        facts, unread = read_state(vb, described, list(case.problem.objects))
        content = bool(described) and facts == truth and not unread
    elif case.kind in ("on", "clear"):
        above = [a[1] for a in truth if a[0] == "on" and a[2] == case.block]
        b = name(case.block)
        content = (f"{name(above[0])} is on top of {b}" in said) if above else (f"nothing is on {b}" in said)
    elif case.kind in ("under", "where"):
        b = name(case.block)
        below = [a[2] for a in truth if a[0] == "on" and a[1] == case.block]
        if below:
            content = f"{b} is on top of {name(below[0])}" in said
        elif ("ontable", case.block) in truth:
            content = f"{b} is on the table" in said
        else:
            content = f"the hand holds {b}" in said
    elif case.kind == "holding":
        held = [a[1] for a in truth if a[0] == "holding"]
        content = (f"the hand holds {name(held[0])}" in said) if held else ("the hand is empty" in said)
    elif case.kind == "table":
        down = {a[1] for a in truth if a[0] == "ontable"}
        m = re.search(r"on the table: (.*?)\.", said)
        listed = {o for o in case.problem.objects if m and name(o) in m.group(1)}
        content = listed == down if down else "no block is on the table" in said
    else:
        raise ValueError(f"{case.id}: unknown kind {case.kind!r}")
    return {
        "id": case.id,
        "style": case.style,
        "kind": case.kind,
        "when": case.when,
        "question": case.question,
        "status": res.get("status"),
        "step_wanted": wanted,
        "step_said": step,
        "right": res.get("status") == "state" and step == wanted and bool(content),
        "reply": reply,
    }
