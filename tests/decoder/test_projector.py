"""decoder/projector.py: token codes from identity vectors, the shared output map, soft vectors spliced into the prompt."""

import pytest
import torch
from support import CharTokens, code_projector, gen_problem, tiny_latents, tiny_world

from decoder.projector import PlanProjector, assemble, load_projectors, projector_state
from decoder.prompt import Slot, build_prompt
from planner.worlds.nl import Verbalizer


def test_codebook_gives_each_object_a_token_code_from_its_identity(bw_domain, tmp_path):
    model = tiny_world(bw_domain)
    proj = code_projector(48)
    codes = proj.codes
    seen = set()
    for seed in range(6):
        p, plan = gen_problem(bw_domain, 4, seed % 3)
        lat = tiny_latents(model, p, plan, seed=seed)
        legend, steps = proj(lat)
        rows = [int((codes == r).all(1).nonzero()[0]) for r in legend]  # each legend entry is a code, exactly
        assert sorted(rows) == list(range(len(p.objects)))  # distinct codes, the first n of the book
        ranks = torch.argsort(torch.argsort(lat.identities @ proj.code_dir))
        assert rows == ranks.tolist()  # ranked by identity vector, not by object order
        for t, step in enumerate(plan):  # an argument is its object's legend entry
            for k, obj in enumerate(step[1:]):
                assert torch.equal(steps[t][1 + k], legend[list(p.objects).index(obj)])
        seen.add(tuple(rows))
    assert len(seen) > 1  # another identity draw gives the objects other codes: codes are not names
    entry = {
        "config": proj.config,
        "state_dict": projector_state(proj),
        "checkpoint": "bw.pt",
        "domain": "bw",
    }
    torch.save({"worlds": {"bw": entry}}, tmp_path / "projector.pt")  # as `save_decoder` writes it
    loaded, _ = load_projectors(tmp_path / "projector.pt")["bw"]
    assert torch.equal(loaded.codes, codes) and torch.equal(loaded.code_dir, proj.code_dir)
    assert torch.equal(loaded(lat)[0], legend)
    big, plan = gen_problem(bw_domain, 9, 0)
    with pytest.raises(ValueError, match="more objects than the projector's 8 codes"):
        proj(tiny_latents(model, big, plan))


def test_a_drawn_code_order_maps_ranks_to_any_codes(bw_domain):
    """Training draws each problem's codes from the whole book (PlanLatents.order): rank k takes order[k], the
    legend entry and every argument of an object the same code, and the answer's code map agrees."""
    model = tiny_world(bw_domain)
    proj = code_projector(48)
    p, plan = gen_problem(bw_domain, 4, 1)
    lat = tiny_latents(model, p, plan, seed=3)
    ranks = proj.object_codes(lat.identities).tolist()
    lat.order = [6, 1, 7, 3]  # of the book's 8
    legend, steps = proj(lat)
    rows = [int((proj.codes == r).all(1).nonzero()[0]) for r in legend]
    assert rows == [lat.order[k] for k in ranks]
    for t, step in enumerate(plan):
        for k, obj in enumerate(step[1:]):
            assert torch.equal(steps[t][1 + k], legend[list(p.objects).index(obj)])
    chars = proj.config["code_chars"]
    assert proj.code_map(lat, list(p.objects)) == {o: chars[r] for o, r in zip(p.objects, rows)}
    for bad in ([1, 1, 2, 3], [1, 2, 3], [1, 2, 3, 8]):
        lat.order = bad
        with pytest.raises(ValueError, match="distinct codes below 8"):
            proj(lat)


def test_code_tokens_are_single_characters_no_name_uses(model_dir):
    from transformers import AutoTokenizer

    from decoder.projector import code_tokens

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = code_tokens(tok)
    assert len(ids) == len(set(ids)) == 64
    for i in ids:
        s = tok.decode([i])
        assert len(s) == 1 and not s.isascii() and tok(s, add_special_tokens=False)["input_ids"] == [i]


def test_worlds_share_the_output_map(bw_domain):
    """Projectors of two worlds of the same latent width share the output norm and scale (trained together),
    nothing else."""
    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 4, 2)
    lat = tiny_latents(model, p, plan)
    a = code_projector(48)
    b = PlanProjector(32, 48, 0.05, a.config["codebook"], a.config["code_chars"], a.codes, shared=a)
    assert b.norm is a.norm and b.scale is a.scale
    assert b.op is not a.op and b.step_pos is not a.step_pos
    torch.testing.assert_close(a(lat)[0], b(lat)[0])  # the same codes for the same identities
    with pytest.raises(ValueError, match="same widths"):
        code_projector(32, shared=a)


def test_assemble_splices_soft_vectors_and_passes_gradients(bw_domain):
    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 3, 4)
    spec = build_prompt(Verbalizer(bw_domain), list(p.objects), p.init, p.goal, plan)
    proj = code_projector(16)
    table = torch.nn.Embedding(300, 16)
    emb = assemble(spec, CharTokens(), table, proj.slots(tiny_latents(model, p, plan), spec))
    n_text = sum(len(s) for s in spec.segments if isinstance(s, str))
    n_soft = len(p.objects) + sum(len(a) for a in plan)
    assert emb.shape == (n_text + n_soft, 16)
    (emb * torch.randn_like(emb)).sum().backward()  # (a plain sum of layer-normed vectors has no gradient)
    assert proj.op[0].weight.grad is not None and proj.op[0].weight.grad.abs().sum() > 0


def test_state_slots_point_at_other_objects_codes(bw_domain):
    """A described state's slots: each object's code, its own vector and one pointer per binary predicate (a
    mixture of the other objects' codes and "none"); an object never points at itself; the pointer's target is
    the object it relates to."""
    from decoder.projector import pointer_targets, predicate_names

    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 4, 1)
    latents = tiny_latents(model, p, plan)
    proj = code_projector(16, relations=len(predicate_names(bw_domain, 2)))
    state = latents.state_at(len(plan))
    from decoder.prompt import build_state_prompt

    spec = build_state_prompt(Verbalizer(bw_domain), list(p.objects))
    slots = proj.state_slots(state, spec)
    n = len(p.objects)
    assert len(slots) == 2 * n + 1
    assert all(slots[Slot("state", i)].shape == (2, 16) for i in range(n))
    assert slots[Slot("world", 0)].shape == (1, 16)
    logits = proj.pointer_logits(state)
    assert logits.shape == (n, 1, n + 1) and torch.isinf(logits[range(n), 0, range(n)]).all()
    weights = logits.softmax(-1)
    assert torch.allclose(weights.sum(-1), torch.ones(n, 1))
    objects = list(p.objects)
    target = pointer_targets(objects, {("on", objects[0], objects[2]), ("ontable", objects[1])}, ["on"])
    assert target[:, 0].tolist() == [2, n, n, n]
