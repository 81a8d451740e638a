"""The cost module: energies over a predicted latent trajectory. An energy is a small composable object (name,
weight, function of the predicted fact probabilities and the actions); the planner adds them and reports each term.

Guardrails are immutable: a step whose guardrail says "violated" is pruned from the search, whatever its task energy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

EPS = 1e-6


@dataclass
class StepView:
    """What energies see of a batch of candidate steps: the facts' probabilities after the step, the actions taken
    (candidate-action indices) and the model's probability that each action could run."""

    fact_probs: torch.Tensor  # (B, F)
    actions: torch.Tensor  # (B,)
    applicable: torch.Tensor  # (B,)
    steps_to_go: torch.Tensor | None = None  # (B,) critic estimate when asked for


@dataclass
class Energy:
    name: str
    weight: float = 1.0

    def __call__(self, view: StepView) -> torch.Tensor:  # (B,)
        raise NotImplementedError


@dataclass
class TaskEnergy(Energy):
    """-sum log p(goal fact) over the goal's facts: 0 when the model is sure the goal holds."""

    goal: list[int] = field(default_factory=list)

    def __call__(self, view):
        p = view.fact_probs[:, self.goal]
        return -torch.log(p.clamp(min=EPS)).sum(-1)

    def satisfied(self, view) -> torch.Tensor:
        return (view.fact_probs[:, self.goal] > 0.5).all(-1)


@dataclass
class CriticEnergy(Energy):
    """The trainable critic: predicted optimal steps to the goal."""

    def __call__(self, view):
        return view.steps_to_go if view.steps_to_go is not None else torch.zeros(view.actions.shape[0])


@dataclass
class FeasibilityEnergy(Energy):
    """-log p(the action could run): actions the model predicts inapplicable cost a lot."""

    def __call__(self, view):
        return -torch.log(view.applicable.clamp(min=EPS))


@dataclass
class Guardrail(Energy):
    """A constraint on every step. `violated` decides pruning; the energy is reported with the plan."""

    description: str = ""

    def violated(self, view) -> torch.Tensor:  # (B,) bool
        raise NotImplementedError


@dataclass
class ForbidActions(Guardrail):
    """Forbids a set of candidate actions (an operator, or any action touching an object)."""

    forbidden: set[int] = field(default_factory=set)

    def violated(self, view):
        return torch.tensor([int(a) in self.forbidden for a in view.actions.tolist()], dtype=torch.bool)

    def __call__(self, view):
        return self.violated(view).float()


@dataclass
class ForbidFact(Guardrail):
    """A fact must never hold ("never put the red block on the table"): -log p(not fact)."""

    fact: int = -1

    def violated(self, view):
        return view.fact_probs[:, self.fact] > 0.5

    def __call__(self, view):
        return -torch.log((1 - view.fact_probs[:, self.fact]).clamp(min=EPS))


@dataclass
class RequireFact(Guardrail):
    """A fact must keep holding at every step: -log p(fact)."""

    fact: int = -1

    def violated(self, view):
        return view.fact_probs[:, self.fact] <= 0.5

    def __call__(self, view):
        return -torch.log(view.fact_probs[:, self.fact].clamp(min=EPS))
