"""An evaluation case: one problem of a suite, with the query a language-model system is asked."""

from __future__ import annotations

from dataclasses import dataclass

from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Domain, Problem

QUESTION = "What is the plan to achieve my goal? Just give the actions in the plan."


@dataclass
class Case:
    suite: str
    name: str
    domain: Domain
    problem: Problem
    verbalizer: Verbalizer
    query: str  # the zero-shot natural-language query
    optimal_length: int | None
    solvable: bool | None


def zero_shot_query(vb: Verbalizer, p: Problem) -> str:
    """PlanBench's zero-shot query layout: the world's description, the statement, the question."""
    intro = vb.config.domain_intro.strip()
    return f"{intro}\n\n[STATEMENT]\n{vb.statement(p.init, p.goal)}\n\n{QUESTION}"
