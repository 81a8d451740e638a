"""planner/jepa.py: local attention, the critics, and what a checkpoint records."""

from pathlib import Path

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
    hook = model.critic.update_object.register_forward_hook(lambda *a: calls.append(1))
    estimate(["a", "b", "c", "d"])
    hook.remove()
    assert len(calls) == 4 + 2


def test_readouts_and_relational_critic_compute_their_plain_definitions():
    """The read-outs and the relational critic skip the argument positions no row uses (logistics' facts have two
    arguments, its widest action four) and split the critic's message layer into per-symbol, per-object and
    per-state parts: their estimates and the critic's gradients are those of the plain formulas (every position,
    one layer over the concatenated message input), written out here."""
    from planner.encoding import ProblemSymbols, Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.worlds.pddl import load_domain

    domain = load_domain(Path(__file__).resolve().parents[2] / "ami_agent" / "worlds" / "logistics.pddl")
    vocab = Vocabulary.from_domain(domain)
    torch.manual_seed(0)
    model = WorldModel(vocab, WorldModelConfig(dim=32, heads=2, critic_kind="relational", critic_dim=16))
    objects = ["c0", "c1", "l0", "l1", "l2", "t0", "a0", "p0", "p1"]
    init = [("city", "c0"), ("city", "c1"), ("location", "l0"), ("location", "l1"), ("location", "l2")]
    init += [("airport", "l0"), ("airport", "l2"), ("in-city", "l0", "c0"), ("in-city", "l1", "c0")]
    init += [("in-city", "l2", "c1"), ("truck", "t0"), ("airplane", "a0"), ("obj", "p0"), ("obj", "p1")]
    sym = ProblemSymbols(vocab, objects, init)
    assert vocab.max_arity > int((sym.fact_rows[:, 1:] >= 0).sum(1).max())  # facts narrower than actions
    s = torch.randn(3, len(objects) + 1, 32)

    def plain_readout(r, rows):
        n = s.shape[1] - 1
        per_arg = r.argument(s[:, :n]).view(s.shape[0], n, r.max_arity, -1)
        h = r.symbol(rows[:, 0]).unsqueeze(0) + r.glob(s[:, n:])
        for i in range(r.max_arity):
            arg = rows[:, 1 + i]
            h = h + per_arg[:, arg.clamp(min=0), i] * (arg >= 0).view(1, -1, 1)
        return r.mlp(h).squeeze(-1)

    with torch.no_grad():
        for r, rows in ((model.fact_probe, sym.fact_rows), (model.applicability, sym.action_rows)):
            assert torch.allclose(r(s, rows), plain_readout(r, rows), atol=1e-5)

    c = model.critic

    def plain_critic(holds, goal_rows, goal_pad):
        state, state_pad = c.state_rows(holds, sym.fact_rows)
        goal = goal_rows.clone()
        goal[..., 0] += c.n_predicates
        rows, pad = torch.cat([state, goal], 1), torch.cat([state_pad, goal_pad], 1)
        b, k, _ = rows.shape
        d, a, n = c.dim, c.arity, len(objects)
        args = rows[..., 1:]
        present = ((args >= 0) & ~pad.unsqueeze(-1)).unsqueeze(-1).float()
        idx = args.clamp(min=0).unsqueeze(-1).expand(-1, -1, -1, d)
        live = (~pad).unsqueeze(-1).float()
        sym_ = c.symbol(rows[..., 0])
        h, g = c.object0.expand(b, n, d), c.global0.expand(b, d)
        for _ in range(c.rounds or n + 2):
            gathered = [torch.gather(h, 1, idx[:, :, i]) * present[:, :, i] for i in range(a)]
            m = c.message(torch.cat([sym_, *gathered, g.unsqueeze(1).expand(-1, k, -1)], -1))
            m = m.view(b, k, a + 1, d) * live.unsqueeze(-1)
            inbox = torch.zeros_like(h)
            for i in range(a):
                inbox = inbox.scatter_add(1, idx[:, :, i], m[:, :, i] * present[:, :, i])
            h = c.norm_object(h + c.update_object(torch.cat([h, inbox], -1)))
            mean = m[:, :, a].sum(1) / live.sum(1).clamp(min=1)
            g = c.norm_global(g + c.update_global(torch.cat([g, mean, h.mean(1)], -1)))
        return torch.nn.functional.softplus(
            c.object_head(h).squeeze(-1).sum(1) + c.global_head(g).squeeze(-1)
        )

    holds = torch.rand(4, len(sym.fact_rows)) > 0.6
    goal_rows = sym.fact_rows[torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])]
    goal_pad = torch.tensor([[False, False], [False, True], [False, False], [True, False]])
    fast = c(holds, sym.fact_rows, goal_rows, goal_pad, len(objects))
    plain = plain_critic(holds, goal_rows, goal_pad)
    assert torch.allclose(fast, plain, atol=1e-5)
    grads = [torch.autograd.grad(x.sum(), list(c.message.parameters())) for x in (fast, plain)]
    for x, y in zip(*grads):
        assert torch.allclose(x, y, atol=1e-5)
