"""planner/latent.py: the committed models read states a search reaches, larger than they trained on, in slices."""

import pytest
import torch
from support import BW_CKPT, committed_model


@pytest.mark.parametrize("name", ["blocksworld-4ops", "mystery-4ops"])
def test_committed_models_read_states_a_search_reaches(name):
    """The search re-encodes every state it reaches, not only generated initial ones (in blocksworld those always
    have the hand empty). On 5-object states reached by 0..6 random steps from generated ones, each committed model
    reads the facts back and predicts the next state exactly on >= 95% of 40. A model whose encoder trained on
    generated initial states only (the 30-minute recipe without `--walk-start`, README; it planned 11 of 244
    PlanBench problems) read these 40 back exactly but predicted the next state exactly on 27 (67.5%), and on the
    generated states themselves (`walk_start=0`) on 40 of 40."""
    from eval.readback import readback

    _, model, _, domain = committed_model(name)
    (row,) = readback(model.eval(), domain, [5], ensemble=5, states=40, walk_start=6)
    assert row["encoded"] >= 0.95 and row["one_step"] >= 0.95, row


@pytest.mark.skipif(not BW_CKPT.exists(), reason="no trained blocksworld world model")
def test_committed_model_reads_states_larger_than_it_trained_on(bw_domain):
    """The committed blocksworld model's encoder and predictor trained on 3-5 blocks only (its first run; the probe
    and applicability head were trained alone on 3-15 blocks later, the latents left as they were): on random 8-, 10-
    and 15-block states it reads the facts back, and the facts after one predicted step, exactly on >= 95% of 20
    (measured on 40 states per size, the 28.5-minute default of 2026-12-02: 100% read back and 100% after one step at
    8, 10 and 15 blocks; the 47.5-minute model before it: 100% at 8 and 10, 97.5% read back and 100% after one step at
    15, and before its probe run 95% / 95% / 82.5% read back and 97.5% / 92.5% / 67.5% after one step)."""
    from eval.readback import readback
    from planner.checkpoint import load_checkpoint

    model, record = load_checkpoint(BW_CKPT)
    first = record
    while first.get("continued_from"):
        first = first["continued_from"]
    assert max(first["trained_objects"]) <= 5 and not first["config"]["train_only"]
    for row in readback(model, bw_domain, [8, 10, 15], ensemble=5, states=20):
        assert row["encoded"] >= 0.95 and row["one_step"] >= 0.95, row


def test_readouts_run_in_slices_bounded_by_symbols(bw_domain):
    """The read-outs of a many-object problem run in slices of at most `max_cells` (state, symbol) pairs; the
    slices give what one batch gives."""
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.latent import EnsembleWorld

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    model = WorldModel(vocab, WorldModelConfig(dim=32, heads=2, attention="local"))
    world = EnsembleWorld(model, [f"b{i}" for i in range(8)], [0, 1])
    facts = sorted(world.fact_ids({("ontable", f"b{i}") for i in range(8)} | {("handempty",)}))
    z = world.encode([facts] * 10)
    whole = world.fact_probs(z), world.applicable_probs(z)
    calls = []
    readout = model.applicability.forward
    model.applicability.forward = lambda s, rows: calls.append(s.shape[0]) or readout(s, rows)
    world.max_cells = 3 * 2 * len(world.symbols.action_rows)  # three states (two draws each) per slice
    sliced = world.fact_probs(z), world.applicable_probs(z)
    assert calls == [6, 6, 6, 2]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, sliced))


def test_the_additive_estimate_sums_the_critic_over_each_goal_fact(bw_domain):
    """`steps_to_go_each`: the relational critic's estimate for each goal fact alone, summed (what a search with
    `critic_goals: each` ranks states by), the same in slices as in one batch; a goal of one fact gives the plain
    estimate."""
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.latent import EnsembleWorld

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    model = WorldModel(vocab, WorldModelConfig(dim=32, heads=2, critic_dim=16, critic_rounds=3))
    blocks = [f"b{i}" for i in range(5)]
    world = EnsembleWorld(model, blocks, [0, 1])
    facts = world.fact_ids(
        {("ontable", b) for b in blocks} | {("clear", b) for b in blocks} | {("handempty",)}
    )
    goal = world.fact_ids({("on", "b0", "b1"), ("on", "b1", "b2"), ("on", "b3", "b4")})
    z = world.encode([facts] * 7)
    probs = world.fact_probs(z)
    probs = (probs + torch.rand_like(probs) * 0.4 - 0.2).clamp(0, 1)  # states that differ
    probs[:, goal] = torch.rand(7, len(goal)) * 0.4  # where no goal fact holds
    each = world.steps_to_go_each(goal, probs)
    alone = sum(world.steps_to_go(z, [g], probs) for g in goal)
    assert each.shape == (7,) and torch.allclose(each, alone, atol=1e-5)
    assert len(set(each.tolist())) > 1
    world.max_rows = 4  # slices of four (state, fact) pairs
    assert torch.allclose(world.steps_to_go_each(goal, probs), each, atol=1e-5)
    assert torch.allclose(world.steps_to_go_each(goal[:1], probs), world.steps_to_go(z, goal[:1], probs))
    assert world.steps_to_go_each([], probs).tolist() == [0.0] * 7
    per = world.steps_to_go_per_fact(goal, probs)  # (B, G), what the goal agenda picks the nearest fact by
    assert per.shape == (7, len(goal)) and torch.allclose(per.sum(1), each, atol=1e-5)
    assert bool((per[probs[:, goal] > 0.5] == 0).all())
    # a goal fact that holds counts 0 (only the others are estimated)
    probs[2:, goal[0]] = 0.9
    held = world.steps_to_go_each(goal, probs)
    assert torch.allclose(held[:2], each[:2], atol=1e-5)
    assert torch.allclose(held[2:], sum(world.steps_to_go(z, [g], probs) for g in goal[1:])[2:], atol=1e-5)


def test_an_ensemble_reads_facts_from_its_draws_mean_logit_above_a_threshold(bw_domain):
    """`EnsembleWorld(readout=..., threshold=...)`: by default a fact's probability is the mean of the draws'; with
    `readout="logit"` the mean of their logits decides, and a fact holds (reported p > 0.5) exactly when that mean
    is above the threshold's logit. Where one draw is sure and the others lean the other way, the mean of
    probabilities and the mean of logits disagree: the case the logistics world reads by logit."""
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.latent import EnsembleWorld
    from planner.search import SearchConfig

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    model = WorldModel(vocab, WorldModelConfig(dim=32, heads=2, attention="local"))
    blocks = [f"b{i}" for i in range(5)]
    seeds = [0, 1, 2]
    plain = EnsembleWorld(model, blocks, seeds)
    facts = plain.fact_ids(
        {("ontable", b) for b in blocks} | {("clear", b) for b in blocks} | {("handempty",)}
    )
    z = plain.encode([facts] * 4)
    logits = model.fact_probe(z.flatten(0, 1), plain.symbols.fact_rows).view(4, 3, -1).detach()
    assert torch.allclose(plain.fact_probs(z), torch.sigmoid(logits).mean(1), atol=1e-6)
    for threshold in (0.5, 0.3):
        world = EnsembleWorld(model, blocks, seeds, readout="logit", threshold=threshold)
        p = world.fact_probs(z)
        mean = logits.mean(1)
        sure = (mean - torch.logit(torch.tensor(threshold))).abs() > 1e-4  # away from the boundary
        assert torch.equal((p > 0.5)[sure], (mean > torch.logit(torch.tensor(threshold)))[sure])
        if threshold == 0.5:  # an untrained model's logits lie near 0: some facts on each side
            assert 0 < int((p > 0.5).sum()) < p.numel()
    # a threshold of 0.3 under the mean of probabilities holds more facts than 0.5 does
    low = EnsembleWorld(model, blocks, seeds, threshold=0.3).fact_probs(z)
    probs = torch.sigmoid(logits).mean(1)
    away = (probs - 0.3).abs() > 1e-4
    assert torch.equal((low > 0.5)[away], (probs > 0.3)[away])
    # one sure draw (logit 5) against two leaning the other way (-1.5): the mean probability is 0.45, the mean
    # logit 0.67
    model.fact_probe.forward = lambda s, rows: (
        torch.tensor([5.0, -1.5, -1.5]).repeat(s.shape[0] // 3)[:, None].expand(-1, rows.shape[0])
    )
    assert not bool((plain.fact_probs(z) > 0.5).any())
    assert bool((EnsembleWorld(model, blocks, seeds, readout="logit").fact_probs(z) > 0.5).all())
    with pytest.raises(ValueError, match="ensemble_readout"):
        SearchConfig(ensemble_readout="median")
    with pytest.raises(ValueError, match="fact_threshold"):
        SearchConfig(fact_threshold=1.0)
