"""planner/data.py: the world model's training trajectories, made by the simulator."""

import random

import torch


def test_full_goals_ask_for_the_whole_arrangement(bw_domain):
    """`full_goal_fraction` makes the sampler's goals the whole target arrangement (long plans for the critic);
    at 0 it draws nothing extra, so the problems are the generator's own stream as before the option."""
    from planner.data import TrajectorySampler
    from planner.encoding import Vocabulary
    from planner.worlds.generate import ProblemGenerator

    vocab = Vocabulary.from_domain(bw_domain)
    # at 0 the sampler draws nothing extra: its problems are the generator's own stream
    zero = TrajectorySampler(bw_domain, vocab, rng=3, full_goal_fraction=0.0)
    generator = ProblemGenerator(bw_domain, None, random.Random(3))
    assert [zero.problem(5) for _ in range(5)] == [generator.sample(5) for _ in range(5)]
    full = TrajectorySampler(bw_domain, vocab, rng=3, full_goal_fraction=1.0)
    plain = TrajectorySampler(bw_domain, vocab, rng=3)
    sizes = {k: [len(s.problem(6).goal) for _ in range(40)] for k, s in (("full", full), ("plain", plain))}
    # a full goal names every 'on' fact of the target towers; a plain one a random subset of them
    assert sum(sizes["full"]) > 1.5 * sum(sizes["plain"]), sizes


def test_collate_puts_each_state_where_it_belongs(bw_domain):
    """The batch tensors against a state-by-state reading of the trajectories: each state's true facts as rows
    (padding after them), its multi-hot facts and applicable actions, the goal rows, actions and steps to go."""
    from planner.data import TrajectorySampler, collate
    from planner.encoding import Vocabulary

    sampler = TrajectorySampler(bw_domain, Vocabulary.from_domain(bw_domain), rng=5, full_goal_fraction=0.5)
    trajs = [sampler.sample(4, 3, 0.5) for _ in range(6)]
    sym = sampler.positional(4)
    b = collate(trajs, sym)
    assert b.fact_rows.shape[:2] == (6, 4) and b.action_rows.shape[:2] == (6, 3)
    for i, t in enumerate(trajs):
        for j, facts in enumerate(t.states):
            k = len(facts)
            assert torch.equal(b.fact_rows[i, j, :k], sym.fact_rows[facts])
            assert not b.fact_pad[i, j, :k].any() and b.fact_pad[i, j, k:].all()
            assert not b.fact_rows[i, j, k:].any()
            assert b.state_targets[i, j].nonzero().flatten().tolist() == sorted(facts)
            assert b.applicable[i, j].nonzero().flatten().tolist() == sorted(t.applicable[j])
        g = len(t.goal)
        assert torch.equal(b.goal_rows[i, :g], sym.fact_rows[t.goal]) and b.goal_pad[i, g:].all()
        assert not b.goal_pad[i, :g].any()
        assert torch.equal(b.action_rows[i], sym.action_rows[t.actions])
        assert b.to_go[i].tolist() == [float(x) for x in t.to_go]


def test_walks_can_start_in_any_reachable_state(bw_domain):
    """`walk_start`: random walks begin after 0..N unrecorded random steps, so their first states include states
    a generated problem never starts in (in blocksworld: a block in the hand); at 0 nothing extra is drawn and the
    trajectories are what they were."""
    from planner.data import TrajectorySampler
    from planner.encoding import Vocabulary

    vocab = Vocabulary.from_domain(bw_domain)
    before = TrajectorySampler(bw_domain, vocab, rng=2)  # no walk_start argument: the sampler as it was
    plain, walked = (TrajectorySampler(bw_domain, vocab, rng=2, walk_start=w) for w in (0, 6))
    assert [plain.sample(4, 3, 0.0).states for _ in range(20)] == [
        before.sample(4, 3, 0.0).states for _ in range(20)
    ]
    empty = plain.positional(4).fact_index[("handempty",)]
    assert all(empty in plain.sample(4, 3, 0.0).states[0] for _ in range(100))
    held = sum(empty not in walked.sample(4, 3, 0.0).states[0] for _ in range(100))
    assert 20 < held < 80, held
