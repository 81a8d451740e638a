"""The graph's typed state: plain, JSON-serialisable data only (text, facts, plan labels, numbers, ids). Tensors such
as the latent trajectory stay in the process that made them (`Agent.plans`, by id): checkpointers fail or bloat on
tensors, and a restarted process rebuilds whatever it needs from the facts."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class Problem(TypedDict, total=False):
    world: str
    objects: list[str]
    init: list[list[str]]
    goal: list[list[str]]
    constraints: list[dict]  # {"kind", "target", "text"}


class AgentState(TypedDict, total=False):
    messages: Annotated[list[dict], operator.add]  # the conversation: {"role", "content"}
    text: str  # this turn's user text
    problem: Problem | None  # the thread's current problem (follow-ups edit it)
    route: str  # plan | chat | respond
    status: str  # solved | no_plan | clarify | chat | error
    reason: str
    reply: str
    plan: list[str]  # PDDL labels
    plan_id: str  # key of the latent plan in Agent.plans (this process only)
    expansions: int
    energies: dict[str, float]
    decode_attempts: int
    decode_mode: str  # the mode of the verified answer
    decoded: list[dict]  # this round's candidates: {"mode", "text"}
    tokens_in: int
    tokens_out: int
    verified: bool
    trace: list[dict]  # this turn's nodes: {"node", "seconds", ...}
    turn_started: float
    plan_record: dict | None  # the plan record of ../shared/ARCHITECTURE.md (planning and clarify turns)
