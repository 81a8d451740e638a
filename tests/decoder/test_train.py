"""decoder/train.py: training batches and a short training run that writes a servable adapter."""

import json
import random
from pathlib import Path

import torch
from support import CharTokens, code_projector, gen_problem, tiny_latents, tiny_world

from decoder.projector import load_projectors
from decoder.prompt import Slot, build_prompt
from planner.worlds.nl import Verbalizer


def test_training_batch_learns_the_words_never_the_vectors(bw_domain):
    from decoder.train import batch_tensors

    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 4, 2)
    vb = Verbalizer(bw_domain)
    spec = build_prompt(vb, list(p.objects), p.init, p.goal, plan)
    from decoder.data import Example

    ex = Example("bw", list(p.objects), tiny_latents(model, p, plan), spec, plan, p.init, p.goal)
    proj = code_projector(16)
    table = torch.nn.Embedding(300, 16)
    tokenize = CharTokens()

    x, mask, y = batch_tensors([ex], {"bw": proj}, tokenize, table, end_id=299)
    n_prompt = sum(len(s) for s in spec.segments if isinstance(s, str)) + len(p.objects) + sum(map(len, plan))
    n_soft = sum(len(a) for a in plan)  # each step's vectors again, in the answer
    n = n_prompt + len(spec.answer) + n_soft + 1
    assert int(mask[0].sum()) == n and x.shape[1] % 64 == 0  # the rest is padding, masked
    answer = y[0, n_prompt:n]
    assert (y[0, n:] == -100).all()
    assert (y[0, :n_prompt] == -100).all() and (answer == -100).sum() == n_soft
    assert answer[answer != -100].tolist() == tokenize(spec.answer) + [299]
    steps = proj.slots(ex.plan, spec)
    at = n_prompt + len(spec.answer_segments[0]) + len(spec.answer_segments[1])
    assert torch.allclose(x[0, at : at + len(plan[0])], steps[Slot("step", 0)])


def test_a_state_example_learns_its_description_and_the_pointers(bw_domain):
    """A described state's batch: the answer's tokens carry the loss, the prompt's vectors do not, and the state
    head's auxiliary loss (pointers against the state's true relations, read-outs against its facts) comes with it."""
    from decoder.data import ExampleSampler, World
    from decoder.train import batch_tensors

    model = tiny_world(bw_domain)
    world = World("bw", bw_domain, Verbalizer(bw_domain), Path("bw.pt"), model)
    proj = code_projector(16, relations=1, unary=3, nullary=1)
    sampler = ExampleSampler(
        [world], (4, 4), rng=2, codes_for=lambda w, plan, objs: proj.code_map(plan, objs)
    )
    ex = sampler.sample_state(world, walk_steps=6)
    assert ex.state is not None and ex.facts and ex.prompt.answer.endswith(".")
    tokenize = CharTokens()
    table = torch.nn.Embedding(300, 16)
    names = {"bw": (["on"], ["clear", "holding", "ontable"], ["handempty"])}
    x, mask, y, pointer = batch_tensors([ex], {"bw": proj}, tokenize, table, 299, names)
    answer = y[0][y[0] != -100].tolist()
    assert answer == tokenize.coded(ex.prompt.answer_segments[0], proj.config["code_chars"]) + [299]
    assert pointer is not None and pointer.item() > 0 and pointer.requires_grad
    x2, *_ = batch_tensors([ex], {"bw": proj}, tokenize, table, 299)
    assert torch.equal(x, x2)  # the loss only: the same inputs


def test_train_decoder_writes_a_servable_adapter(model_dir, bw_domain, tmp_path):
    from decoder.data import World
    from decoder.train import DecoderTrainConfig, train_decoder

    ckpt = tmp_path / "bw.pt"
    model = tiny_world(bw_domain)
    from planner.checkpoint import save_checkpoint

    save_checkpoint(model, ckpt, {})
    from planner.checkpoint import load_checkpoint

    world = World("bw", bw_domain, Verbalizer(bw_domain), ckpt, load_checkpoint(ckpt)[0])
    twin = World("bw2", bw_domain, Verbalizer(bw_domain), ckpt, load_checkpoint(ckpt)[0])
    cfg = DecoderTrainConfig(rank=4, alpha=8, batch=2, max_steps=2, minutes=5, objects=(3, 3), state_steps=2)
    rec = train_decoder([world, twin], Path(model_dir), tmp_path / "dec", cfg, "test", log=lambda m: None)
    assert rec["steps"] == 4 and [s["steps"] for s in rec["stages"].values()] == [2, 2]
    assert (
        rec["stages"]["plans"]["history"][0]["loss"] > 0 and rec["stages"]["states"]["history"][0]["loss"] > 0
    )
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


def test_the_default_recipe_is_what_made_the_committed_decoder():
    """`ami-agent train decoder` with no option runs the recipe recorded with checkpoints/decoder, both stages."""
    from dataclasses import asdict

    from decoder.train import DecoderTrainConfig

    record = json.loads(
        (Path(__file__).resolve().parents[2] / "checkpoints/decoder/decoder.json").read_text()
    )
    assert json.loads(json.dumps(asdict(DecoderTrainConfig()))) == record["config"]
    assert [s["steps"] for s in record["stages"].values()] == [
        DecoderTrainConfig().max_steps,
        DecoderTrainConfig().state_steps,
    ]
    assert record["reproduce"] == "ami-agent train decoder"
