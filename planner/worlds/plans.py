"""Plans: reading plan files, and the one validator of the project (what VAL says: valid, or the first failing step)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from planner.worlds.errors import WorldError
from planner.worlds.pddl import Atom, Domain, Problem, format_atom
from planner.worlds.strips import instantiate

PlanStep = tuple[str, ...]  # ("stack", "a", "b")

_STEP = re.compile(r"^\(\s*([^\s()]+)((?:\s+[^\s()]+)*)\s*\)$")


def parse_plan_text(
    text: str, domain: Domain, problem: Problem | None = None, source: str = "<plan>"
) -> list[PlanStep]:
    """One action per line, `(name arg ...)`; `;` starts a comment, blank lines are skipped."""
    steps: list[PlanStep] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        m = _STEP.match(line)
        if not m:
            raise WorldError(
                "a plan line must look like (action arg ...)", source=source, line=lineno, token=line
            )
        steps.append(
            check_step((m.group(1).lower(), *m.group(2).lower().split()), domain, problem, source, lineno)
        )
    return steps


def check_step(
    step: PlanStep, domain: Domain, problem: Problem | None, source: str = "<plan>", line: int | None = None
) -> PlanStep:
    name, args = step[0], step[1:]
    if name not in domain.actions:
        raise WorldError(
            f"unknown action '{name}'",
            source=source,
            line=line,
            token=name,
            hint=f"The domain's actions: {', '.join(sorted(domain.actions))}",
        )
    arity = len(domain.actions[name].parameters)
    if arity != len(args):
        raise WorldError(
            f"action '{name}' takes {arity} argument(s), got {len(args)}",
            source=source,
            line=line,
            token=format_atom(step),
        )
    if problem is not None:
        for a in args:
            if a not in problem.objects and a not in domain.constants:
                raise WorldError(
                    f"unknown object '{a}'",
                    source=source,
                    line=line,
                    token=a,
                    hint=f"The problem's objects: {', '.join(problem.objects)}",
                )
    return step


def load_plan(path: str | Path, domain: Domain, problem: Problem | None = None) -> list[PlanStep]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorldError("no such plan file", source=str(path)) from None
    except (UnicodeDecodeError, OSError) as e:
        raise WorldError(f"cannot read the plan file: {e}", source=str(path)) from None
    return parse_plan_text(text, domain, problem, str(path))


@dataclass
class Validation:
    valid: bool
    steps_executed: int
    failed_step: int | None = None  # 1-based, as VAL counts
    failed_action: str | None = None
    unmet_preconditions: list[Atom] = field(default_factory=list)
    unmet_goals: list[Atom] = field(default_factory=list)
    final_state: frozenset[Atom] = frozenset()

    @property
    def reason(self) -> str:
        if self.valid:
            return "Plan valid"
        if self.failed_step is not None:
            unmet = ", ".join(format_atom(a) for a in self.unmet_preconditions)
            return f"step {self.failed_step} {self.failed_action}: precondition not satisfied: {unmet}"
        return "goal not satisfied: " + ", ".join(format_atom(a) for a in self.unmet_goals)


def simulate(domain: Domain, state: frozenset[Atom], step: PlanStep) -> tuple[frozenset[Atom], list[Atom]]:
    """Applies one step; returns the next state and the unmet preconditions (state unchanged when any)."""
    pre, add, dele = instantiate(domain.actions[step[0]], tuple(step[1:]))
    unmet = [p for p in pre if p not in state]
    if unmet:
        return state, unmet
    return (state - set(dele)) | set(add), []


def validate(domain: Domain, problem: Problem, plan: list[PlanStep]) -> Validation:
    """Executes the plan from the initial state: valid, or the first failing step and its unmet preconditions."""
    state = problem.init
    for i, step in enumerate(plan, start=1):
        check_step(step, domain, problem)
        state, unmet = simulate(domain, state, step)
        if unmet:
            return Validation(False, i - 1, i, format_atom(step), unmet, final_state=state)
    missing = sorted(problem.goal - state)
    return Validation(not missing, len(plan), unmet_goals=missing, final_state=state)


def format_plan(plan: list[PlanStep]) -> list[str]:
    return [format_atom(s) for s in plan]
