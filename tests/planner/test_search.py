"""planner/search.py: beam and best-first search on hand-made latent worlds; the search imports nothing from the simulator."""

import ast
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT
from support import LineWorld

from planner.energies import ForbidActions, ForbidFact
from planner.search import SearchConfig, beam_search


def test_search_finds_the_shortest_plan():
    r = beam_search(LineWorld(), [1], [4], cfg=SearchConfig(beam_width=4))
    assert r.status == "solved"
    assert r.actions == [("right",)] * 3
    assert r.latent_trajectory.shape == (4, 1, 6)
    assert len(r.step_energies) == 3 and {"task", "feasibility", "critic"} <= set(r.step_energies[0])
    assert r.expansions == 4  # the root, then {0, 2}, then {3} (1 is already seen)


def test_guardrail_blocks_and_is_named():
    guard = ForbidFact("never-3", description="never stand on square 3", fact=3)
    r = beam_search(LineWorld(), [1], [4], [guard], SearchConfig(beam_width=4))
    assert r.status == "no_plan" and "never stand on square 3" in r.reason
    ok = beam_search(LineWorld(), [1], [0], [guard], SearchConfig(beam_width=4))
    assert ok.status == "solved" and ok.actions == [("left",)]


class TwinWorld(LineWorld):
    """LineWorld with two ways right: "run" (action 2, the model is surer of it) and "walk" (action 1)."""

    def __init__(self):
        self.symbols = SimpleNamespace(actions=[("left",), ("walk",), ("run",)])
        self.n_actions = 3

    def step(self, latents, actions):
        return super().step(latents, torch.where(actions == 2, 1, actions))

    def applicable_probs(self, latents):
        two = super().applicable_probs(latents)
        return torch.cat([two, (two[:, 1:] + 0.04).clamp(max=1.0)], -1)


def test_children_reaching_one_state_are_scored_once_without_losing_a_permitted_one():
    """Walking and running right reach the same state: it is scored once, through the action the model is surest
    of (run), unless a guardrail forbids that action: then through the permitted one (walk)."""
    r = beam_search(TwinWorld(), [1], [3], cfg=SearchConfig(beam_width=4))
    assert r.status == "solved" and r.actions == [("run",)] * 2
    # depth 1 scores {0, 2 (run)}, depth 2 scores {3 (run)}: the walks and the steps back to 1 are never scored
    assert r.generated == 3
    no_run = ForbidActions("no-run", description="do not run", forbidden={2})
    r = beam_search(TwinWorld(), [1], [3], [no_run], SearchConfig(beam_width=4))
    assert r.status == "solved" and r.actions == [("walk",)] * 2


class TrapWorld(LineWorld):
    """LineWorld whose critic lies: squares 0 and 1 (a dead end for a walk to 5) look almost at the goal."""

    def steps_to_go(self, latents, goal, probs=None):
        pos = latents[:, 0].argmax(-1)
        return torch.where(pos <= 1, 0.1, (pos - goal[0]).abs().float())


def test_best_first_backs_out_of_a_dead_end_where_beam_runs_dry():
    """From 2 to 5 the critic pulls the search left, to 1 then 0, where every step leads back to a known square:
    a beam of one runs dry there; best-first keeps the step right on its open list and goes back to it."""
    beam = beam_search(TrapWorld(), [2], [5], cfg=SearchConfig(beam_width=1))
    assert beam.status == "no_plan" and "no new state" in beam.reason and not beam.budget_spent
    bf = beam_search(TrapWorld(), [2], [5], cfg=SearchConfig(beam_width=1, strategy="best-first"))
    assert bf.status == "solved" and bf.actions == [("right",)] * 3
    assert bf.expansions == 5  # 2, then 1 and 0 (the trap), then 3 and 4
    with pytest.raises(ValueError, match="strategy"):
        beam_search(TrapWorld(), [2], [5], cfg=SearchConfig(strategy="depth-first"))


class PerFactWorld(TrapWorld):
    """TrapWorld whose estimates per goal fact (`steps_to_go_each`) tell the truth where its estimate of the whole
    goal lies."""

    def steps_to_go_each(self, goal, probs):
        return (probs.argmax(-1) - goal[0]).abs().float()


def test_critic_goals_each_ranks_states_by_the_estimates_per_goal_fact():
    """`critic_goals: each` ranks children by the sum of the critic's estimates per goal fact (`steps_to_go_each`),
    `joint` by its estimate of the whole goal: on PerFactWorld a beam of one goes straight to the goal with the
    first and runs dry in the trap with the second."""
    each = beam_search(PerFactWorld(), [2], [5], cfg=SearchConfig(beam_width=1, critic_goals="each"))
    assert each.status == "solved" and each.actions == [("right",)] * 3 and each.expansions == 3
    joint = beam_search(PerFactWorld(), [2], [5], cfg=SearchConfig(beam_width=1))
    assert joint.status == "no_plan" and "no new state" in joint.reason
    with pytest.raises(ValueError, match="critic_goals"):
        beam_search(PerFactWorld(), [2], [5], cfg=SearchConfig(critic_goals="max"))


def test_budget_is_reported():
    r = beam_search(LineWorld(), [0], [5], cfg=SearchConfig(beam_width=1, max_expansions=2))
    assert r.status == "no_plan" and "budget" in r.reason and r.budget_spent
    assert r.spent == "expansions" and "expansions ran out first" in r.reason
    r = beam_search(LineWorld(), [0], [5], cfg=SearchConfig(beam_width=1, time_limit=0))
    assert r.budget_spent and r.spent == "time" and "time ran out first" in r.reason


SEARCH_MODULES = [
    "planner/search.py",
    "planner/latent.py",
    "planner/energies.py",
    "planner/api.py",
    "planner/jepa.py",
    "planner/encoding.py",
    "planner/cem.py",
    "planner/mpc.py",
]


@pytest.mark.parametrize("path", SEARCH_MODULES)
def test_search_code_imports_nothing_from_the_simulator(path):
    tree = ast.parse((ROOT / path).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert not [n for n in names if n.startswith("planner.worlds") or n.startswith("planner.data")], names
