"""The graph's typed state: plain, JSON-serialisable data only (text, facts, plan labels, numbers, ids), so the
SQLite checkpointer keeps everything a later turn needs. Tensors never enter it: the latent plan is recomputed from
the plan's facts, labels and identity draws (`planner.Planner.latent_plan`) whenever the decoder needs it, in this
process or after a restart."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class Problem(TypedDict, total=False):
    world: str
    objects: list[str]
    init: list[list[str]]
    goal: list[list[str]]
    constraints: list[dict]  # planner.constraints.Constraint.to_dict()
    before: Problem | None  # the problem before the last follow-up edited it (for "undo"), a few deep


class Plan(TypedDict, total=False):
    """The planner's answer to the thread's problem, as plain data."""

    status: str  # solved | no_plan
    reason: str
    actions: list[list[str]]  # (name, arg, ...) per step
    labels: list[str]  # PDDL syntax, the plan record's
    seeds: list[int]  # the identity draws that planned: the latent trajectory is computed again from them
    predicted: list[list[list[str]]]  # the facts the world model predicts before the plan and after each step
    energies: dict[str, float]
    expansions: int
    escalated: bool  # the beam spent its share of the budget; best-first went on (planner.api)
    escalated_by: str  # what the beam ran out of: "time" or "expansions"
    budget_spent: bool  # no plan because time or expansions ran out


class AgentState(TypedDict, total=False):
    messages: Annotated[list[dict], operator.add]  # the conversation: {"role", "content"}
    text: str  # this turn's user text
    problem: Problem | None  # the thread's current problem (follow-ups edit it)
    plan: Plan | None  # the thread's last plan
    route: str  # plan | describe | chat | respond
    status: str  # solved | no_plan | clarify | chat | state | error
    question: dict | None  # a question about a state of the thread's plan: {"when", "kind", "block"}
    end_state: dict | None  # the plan's end state in words: {"text", "equal_to_prediction"}
    reply: str
    understood: str  # this turn's problem in one line ("You have: ... You want: ..."), the reply's first line
    decode_attempts: int
    decode_mode: str  # the mode of the verified answer
    decoded: list[dict]  # this round's candidates: {"mode", "text", "equal_to_plan"}
    tokens_in: int
    tokens_out: int
    verified: bool
    trace: list[dict]  # this turn's nodes: {"node", "seconds", ...}
    turn_started: float
    plan_record: dict | None  # the plan record of ../shared/ARCHITECTURE.md (planning and clarify turns)
