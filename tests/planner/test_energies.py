"""planner/energies.py: each energy against its written formula."""

import math

import torch

from planner.energies import FeasibilityEnergy, ForbidActions, ForbidFact, RequireFact, StepView, TaskEnergy


def _view():
    probs = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.99, 0.5]])
    return StepView(probs, torch.tensor([0, 2]), torch.tensor([0.8, 0.05]))


def test_task_energy_formula():
    v = _view()
    e = TaskEnergy("task", goal=[0, 2])
    expected = torch.tensor([-(math.log(0.9) + math.log(0.6)), -(math.log(0.1) + math.log(0.5))])
    torch.testing.assert_close(e(v), expected)
    assert e.satisfied(v).tolist() == [True, False]


def test_feasibility_and_guardrail_formulas():
    v = _view()
    torch.testing.assert_close(FeasibilityEnergy("f")(v), -torch.log(torch.tensor([0.8, 0.05])))
    forbid = ForbidFact("no-1", fact=1)
    torch.testing.assert_close(forbid(v), -torch.log(torch.tensor([0.8, 0.01])))
    assert forbid.violated(v).tolist() == [False, True]
    require = RequireFact("keep-2", fact=2)
    torch.testing.assert_close(require(v), -torch.log(torch.tensor([0.6, 0.5])))
    assert require.violated(v).tolist() == [False, True]
    assert ForbidActions("no-op2", forbidden={2}).violated(v).tolist() == [False, True]
