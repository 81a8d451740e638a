"""planner/jepa.py: local attention, the critics, and what a checkpoint records."""

import pytest
import torch


@pytest.mark.parametrize("attention", ["local", "full"])
def test_local_attention_does_not_see_unrelated_objects(bw_domain, attention):
    """With local attention what the encoder and predictor make of a tower depends on that tower alone: adding
    other towers of more blocks leaves its objects' latents and the global token as they were (this is what lets
    a model trained on few objects run on many). With full attention they change."""
    from planner.encoding import ProblemSymbols, Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.latent import fact_batch

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    model = WorldModel(vocab, WorldModelConfig(dim=32, heads=2, attention=attention)).eval()
    tower = [("on", "a", "b"), ("ontable", "b"), ("clear", "a"), ("handempty",)]
    others = [
        ("on", "c", "d"),
        ("on", "d", "e"),
        ("ontable", "e"),
        ("clear", "c"),
        ("ontable", "f"),
        ("clear", "f"),
    ]
    out = []
    for objects, facts in ((["a", "b"], tower), (["a", "b", "c", "d", "e", "f"], tower + others)):
        sym = ProblemSymbols(vocab, objects)
        rows, pad = fact_batch(sym, [[sym.fact_index[f] for f in facts]])
        ids = model.object_ids(torch.arange(len(objects)).unsqueeze(0))
        with torch.no_grad():
            z = model.encode(rows, pad, ids)
            nxt = model.predict(z, sym.action_rows[sym.action_index[("unstack", "a", "b")]].unsqueeze(0), ids)
        keep = [0, 1, len(objects)]  # a, b, the global token
        out.append((z[0, keep], nxt[0, keep]))
    same = all(torch.allclose(x, y, atol=1e-5) for x, y in zip(out[0], out[1]))
    assert same == (attention == "local")


@pytest.mark.parametrize("attention", ["local", "full"])
def test_local_critic_adds_one_term_per_tower(bw_domain, attention):
    """With local attention in the encoder and the critic (sum head), a tower's share of the steps-to-go estimate
    depends on that tower and its goal alone: what tower B adds to the estimate (before the softplus) is the same
    beside tower A as beside tower C. This is what lets a critic trained on few blocks count the work on many.
    With a full-attention critic it differs."""
    from planner.encoding import ProblemSymbols, Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.latent import fact_batch

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        dim=32,
        heads=2,
        attention="local",
        critic_kind="attention",
        critic_head="sum",
        critic_attention=attention,
    )
    model = WorldModel(vocab, cfg).eval()
    torch.nn.init.normal_(model.critic.object_head[1].weight)  # (it starts at zero)
    towers = {  # objects, facts, goal
        "A": (["a", "b"], [("on", "a", "b"), ("ontable", "b"), ("clear", "a")], [("on", "b", "a")]),
        "B": (
            ["c", "d"],
            [("ontable", "c"), ("ontable", "d"), ("clear", "c"), ("clear", "d")],
            [("on", "c", "d")],
        ),
        "C": (["e"], [("ontable", "e"), ("clear", "e")], [("ontable", "e")]),
    }
    slot = {o: i for i, o in enumerate("abcdef")}  # each object keeps its identity whatever else is there

    def pre_softplus(names):
        objects = [o for n in names for o in towers[n][0]]
        facts = [f for n in names for f in towers[n][1]] + [("handempty",)]
        goal = [g for n in names for g in towers[n][2]]
        sym = ProblemSymbols(vocab, objects)
        rows, pad = fact_batch(sym, [[sym.fact_index[f] for f in facts]])
        ids = model.object_ids(torch.tensor([[slot[o] for o in objects]]))
        goal_rows = sym.fact_rows[[sym.fact_index[g] for g in goal]].unsqueeze(0)
        with torch.no_grad():
            z = model.encode(rows, pad, ids)
            y = model.critic(z, goal_rows, torch.zeros(1, len(goal), dtype=torch.bool), ids)
        return torch.log(torch.expm1(y.double()))

    share_beside_a = pre_softplus("AB") - pre_softplus("A")
    share_beside_c = pre_softplus("CB") - pre_softplus("C")
    assert torch.allclose(share_beside_a, share_beside_c, atol=1e-4) == (attention == "local")


def test_local_attention_model_is_recorded_and_refuses_unknown_kinds(tmp_path, bw_domain):
    from planner.checkpoint import load_checkpoint, save_checkpoint
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig

    vocab = Vocabulary.from_domain(bw_domain)
    cfg = WorldModelConfig(
        dim=32, heads=2, attention="local", critic_kind="attention", critic_attention="full"
    )
    model = WorldModel(vocab, cfg)
    save_checkpoint(model, tmp_path / "m.pt", {"kind": "ami-agent world model", "domain": bw_domain.name})
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.cfg.attention == "local" and loaded.encoder.local and loaded.predictor.local
    assert loaded.cfg.critic_attention == "full" and not loaded.critic.local
    with pytest.raises(ValueError, match="attention"):
        WorldModel(vocab, WorldModelConfig(attention="sparse"))
    with pytest.raises(ValueError, match="critic_attention"):
        WorldModel(vocab, WorldModelConfig(critic_attention="sparse"))


def test_relational_critic_ignores_object_names_and_scales_its_rounds(bw_domain):
    """The relational critic sees facts, not identities: renaming the objects (permuting them) leaves its estimate
    unchanged, and it runs as many rounds as objects + 2 (the facts at a tower's foot reach its top)."""
    from planner.encoding import ProblemSymbols, Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    model = WorldModel(
        vocab, WorldModelConfig(dim=32, heads=2, critic_kind="relational", critic_dim=16)
    ).eval()
    facts = [
        ("on", "a", "b"),
        ("on", "b", "c"),
        ("ontable", "c"),
        ("clear", "a"),
        ("ontable", "d"),
        ("clear", "d"),
        ("handempty",),
    ]
    goal = [("on", "c", "a"), ("on", "d", "c")]

    def estimate(objects):
        sym = ProblemSymbols(vocab, objects)
        holds = sym.fact_mask(facts).unsqueeze(0)
        goal_rows = sym.fact_rows[[sym.fact_index[g] for g in goal]].unsqueeze(0)
        with torch.no_grad():
            return model.critic(
                holds, sym.fact_rows, goal_rows, torch.zeros(1, 2, dtype=torch.bool), len(objects)
            )

    base = estimate(["a", "b", "c", "d"])
    assert torch.allclose(base, estimate(["d", "c", "b", "a"]), atol=1e-5)
    assert torch.allclose(base, estimate(["c", "a", "d", "b"]), atol=1e-5)
    calls = []
    hook = model.critic.message.register_forward_hook(lambda *a: calls.append(1))
    estimate(["a", "b", "c", "d"])
    hook.remove()
    assert len(calls) == 4 + 2
