"""planner/search.py: beam and best-first search on hand-made latent worlds; the search imports nothing from the simulator."""

import ast
from dataclasses import replace
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


class TwoTokens:
    """Two tokens on lines, A on squares 0..3 and B on 0..5: facts 0-3 say where A is, 4-9 where B is; actions move
    one token a square; fact 10 never holds. Its critic sees only A's square and is flat on A's first three (a plateau of three steps
    for a goal on A's square 3), and it tells nothing (a flat 3) about a goal of two facts both to go."""

    def __init__(self):
        acts = [("b-left",), ("b-right",), ("a-left",), ("a-right",)]
        self.symbols = SimpleNamespace(actions=acts, action_index={a: i for i, a in enumerate(acts)})
        self.n_actions = 4

    @staticmethod
    def _hot(a, b):
        z = torch.zeros(a.shape[0], 1, 11)  # fact 10: one that no move makes true
        z[torch.arange(a.shape[0]), 0, a] = 1.0
        z[torch.arange(a.shape[0]), 0, 4 + b] = 1.0
        return z

    def _where(self, latents):
        return latents[:, 0, :4].argmax(-1), latents[:, 0, 4:10].argmax(-1)

    def encode(self, states):
        a = torch.tensor([min(f for f in s if f < 4) for s in states])
        b = torch.tensor([min(f for f in s if f >= 4) - 4 for s in states])
        return self._hot(a, b)

    def step(self, latents, actions):
        a, b = self._where(latents)
        a = (a + torch.where(actions == 3, 1, 0) - torch.where(actions == 2, 1, 0)).clamp(0, 3)
        b = (b + torch.where(actions == 1, 1, 0) - torch.where(actions == 0, 1, 0)).clamp(0, 5)
        return self._hot(a, b)

    def unroll(self, latent, actions):
        out = [latent]
        for x in actions:
            out.append(self.step(out[-1], torch.tensor([x])))
        return torch.cat(out)

    def fact_probs(self, latents):
        return latents[:, 0] * 0.98 + 0.01

    def applicable_probs(self, latents):
        a, b = self._where(latents)
        return torch.stack([b > 0, b < 5, a > 0, a < 3], -1).float() * 0.9 + 0.05

    def steps_to_go_each(self, goal, probs):
        est = self.steps_to_go_per_fact(goal, probs)
        both_open = (est > 0).sum(-1) > 1
        return torch.where(both_open, 3.0, est.sum(-1))

    def steps_to_go_per_fact(self, goal, probs):
        a, b = probs[:, :4].argmax(-1), probs[:, 4:10].argmax(-1)
        est = []
        for g in goal:
            if g < 4:
                est.append(torch.where(a == g, 0.0, torch.where(a < 3, 3.0, (a - g).abs().float())))
            elif g < 10:
                est.append((b - (g - 4)).abs().float())
            else:
                est.append(torch.full_like(a, 5.0, dtype=torch.float))
        return torch.stack(est, -1)

    def facts_of(self, probs):
        return frozenset(f"f{i}" for i in (probs > 0.5).nonzero().flatten().tolist())


BEST_FIRST = dict(strategy="best-first", beam_width=1, task_weight=0.0, critic_goals="each")


def test_novelty_crosses_a_plateau_trying_what_is_new_first():
    """On the critic's plateau (A on squares 0-2 all read 3 steps from square 3) plain best-first tries every
    combination of moves; with novelty, states that make a fact true for the first time at their estimate go first
    (each new square of A or of B), and the walk right is found in fewer expansions. The plan is the same."""
    plain = beam_search(TwoTokens(), [0, 4], [3], cfg=SearchConfig(**BEST_FIRST))
    novel = beam_search(TwoTokens(), [0, 4], [3], cfg=SearchConfig(**BEST_FIRST, novelty=True))
    assert plain.status == novel.status == "solved"
    assert plain.actions == novel.actions == [("a-right",)] * 3
    assert novel.expansions < plain.expansions


class KeyWorld(LineWorld):
    """A key to carry home past two decoys: facts 0-2 the key (at far, held, at home), 3-5 decoy x's square, 6-8
    decoy y's. Actions: take the key (far -> held), drop it (held -> home), move a decoy a square. The critic is
    wrong the way a learned one is on a larger problem than it trained on: taking the key reads no nearer (2.5 from
    far's 2), and any decoy off its first square reads half a step nearer. Rollouts and fact read-outs as
    LineWorld's."""

    FACTS = [("at", "k", "far"), ("held", "k"), ("at", "k", "home")]
    FACTS += [("at", d, f"s{i}") for d in "xy" for i in range(3)]

    def __init__(self):
        acts = [("take", "k"), ("drop", "k"), ("right", "x"), ("left", "x"), ("right", "y"), ("left", "y")]
        self.symbols = SimpleNamespace(
            actions=acts,
            action_index={a: i for i, a in enumerate(acts)},
            facts=self.FACTS,
            vocab=SimpleNamespace(static=()),
        )
        self.n_actions = len(acts)

    @staticmethod
    def _hot(k, x, y):
        z = torch.zeros(k.shape[0], 1, 9)
        for part, off in ((k, 0), (x, 3), (y, 6)):
            z[torch.arange(k.shape[0]), 0, part + off] = 1.0
        return z

    @staticmethod
    def _where(latents):
        return latents[:, 0, :3].argmax(-1), latents[:, 0, 3:6].argmax(-1), latents[:, 0, 6:9].argmax(-1)

    def encode(self, states):
        parts = [[min(f for f in s if lo <= f < lo + 3) - lo for s in states] for lo in (0, 3, 6)]
        return self._hot(*(torch.tensor(x) for x in parts))

    def step(self, latents, actions):
        k, x, y = self._where(latents)
        k = torch.where((actions == 0) & (k == 0), 1, torch.where((actions == 1) & (k == 1), 2, k))
        x = (x + (actions == 2).long() - (actions == 3).long()).clamp(0, 2)
        y = (y + (actions == 4).long() - (actions == 5).long()).clamp(0, 2)
        return self._hot(k, x, y)

    def applicable_probs(self, latents):
        k, x, y = self._where(latents)
        ok = torch.stack([k == 0, k == 1, x < 2, x > 0, y < 2, y > 0], -1)
        return ok.float() * 0.9 + 0.05

    def steps_to_go_per_fact(self, goal, probs):
        k, x, y = probs[:, :3].argmax(-1), probs[:, 3:6].argmax(-1), probs[:, 6:9].argmax(-1)
        moved = ((x > 0) | (y > 0)).float() * 0.5
        est = torch.tensor([2.0, 2.5, 0.0])[k] - moved * (k < 2).float()
        return torch.stack([est for _ in goal], -1)

    def steps_to_go_each(self, goal, probs):
        return self.steps_to_go_per_fact(goal, probs).sum(-1)

    def facts_of(self, probs):
        return frozenset(self.FACTS[i] for i in (probs > 0.5).nonzero().flatten().tolist())


def test_preferred_actions_try_the_step_on_the_goals_object_before_the_critics_plateau():
    """Taking the key reads no nearer to having it home, moving a decoy reads nearer: best-first led by the critic
    tries the decoys' squares first; with preferred actions (the ones naming the key, an object of the open goal
    fact) every other pick comes from their list and the key is taken at once. Both plans carry the key home."""
    cfg = SearchConfig(**BEST_FIRST, critic_weight=3.0)
    plain = beam_search(KeyWorld(), [0, 3, 6], [2], cfg=cfg)
    pref = beam_search(KeyWorld(), [0, 3, 6], [2], cfg=replace(cfg, preferred=True))
    assert plain.status == pref.status == "solved"
    assert pref.actions == [("take", "k"), ("drop", "k")]
    assert plain.actions[-2:] == [("take", "k"), ("drop", "k")]
    assert pref.expansions == 2 and plain.expansions > 5


def test_goal_agenda_takes_the_facts_one_at_a_time_after_the_whole_goal_spends_its_share():
    """The critic says nothing of the goal {A on 3, B on 1} while both are to go: the search for the whole goal
    spends its third of the budget; then the agenda reaches B on 1 (the fact the critic puts nearest) and A on 3
    with B kept there, and joins the two plans."""
    cfg = SearchConfig(**BEST_FIRST, goal_agenda=True, max_expansions=20)
    r = beam_search(TwoTokens(), [0, 4], [3, 5], cfg=cfg)
    assert r.status == "solved"
    assert r.actions == [("b-right",)] + [("a-right",)] * 3
    assert r.expansions <= 20 and r.latent_trajectory.shape[0] == 5
    assert r.predicted_facts[-1] == frozenset({"f3", "f5"})
    whole = beam_search(TwoTokens(), [0, 4], [3, 5], cfg=replace(cfg, goal_agenda=False, max_expansions=6))
    assert whole.status == "no_plan" and whole.budget_spent  # the whole goal alone, in its share: no plan


def test_goal_agenda_reports_an_unreachable_goal_as_the_whole_goals_search_does():
    """A goal fact no state has (fact 10): the search for the whole goal runs out of states to try
    within its share, and the call ends with its verdict, without a search fact by fact after it; with too small a
    budget to run out of states, the agenda takes over and spends the rest."""
    cfg = SearchConfig(**BEST_FIRST, goal_agenda=True)
    r = beam_search(TwoTokens(), [0, 4], [3, 10], cfg=cfg)
    assert r.status == "no_plan" and "no new state" in r.reason and not r.budget_spent
    spent = beam_search(TwoTokens(), [0, 4], [3, 10], cfg=replace(cfg, max_expansions=30))
    assert spent.status == "no_plan" and spent.budget_spent
    assert "fact by fact, 1 of the goal's 2 facts reached" in spent.reason  # A on 3, then fact 10 to no end


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
