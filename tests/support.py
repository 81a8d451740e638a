"""Helpers the tests share (on the test path through pyproject's `pythonpath`): a hand-made latent world, tiny
models and projectors, the committed models and decoder inputs planned by them."""

import random
import socket
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT

from decoder.api import DEFAULT_DIR
from decoder.projector import PlanLatents, PlanProjector, Tokens
from planner.encoding import Vocabulary
from planner.jepa import WorldModel, WorldModelConfig
from planner.latent import LatentWorld
from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve
from planner.worlds.plans import parse_plan_text
from planner.worlds.strips import Task


class LineWorld:
    """States 0..5 on a line; facts "at-i" (i = state); actions 0 = left, 1 = right. Latents are one-hot states."""

    N = 6

    def __init__(self):
        self.symbols = SimpleNamespace(actions=[("left",), ("right",)])
        self.n_actions = 2

    def encode(self, states):
        return torch.stack([torch.nn.functional.one_hot(torch.tensor(s[0]), self.N).float() for s in states])[
            :, None
        ]

    def step(self, latents, actions):
        pos = latents[:, 0].argmax(-1) + torch.where(actions == 1, 1, -1)
        return torch.nn.functional.one_hot(pos.clamp(0, self.N - 1), self.N).float()[:, None]

    def unroll(self, latent, actions):
        out = [latent]
        for a in actions:
            out.append(self.step(out[-1], torch.tensor([a])))
        return torch.cat(out)

    def fact_probs(self, latents):
        return latents[:, 0] * 0.98 + 0.01

    def applicable_probs(self, latents):
        pos = latents[:, 0].argmax(-1)
        return torch.stack([(pos > 0).float(), (pos < self.N - 1).float()], -1) * 0.9 + 0.05

    def steps_to_go(self, latents, goal, probs=None):
        return (latents[:, 0].argmax(-1) - goal[0]).abs().float()

    def facts_of(self, probs):
        return frozenset({f"at-{int(probs.argmax())}"})


BW_CKPT = ROOT / "checkpoints" / "blocksworld-4ops.pt"


def committed_model(name: str):
    """A committed world model and its domain (from its record), or skip."""
    from planner.checkpoint import load_checkpoint
    from planner.worlds.pddl import load_domain

    ckpt = ROOT / "checkpoints" / f"{name}.pt"
    if not ckpt.exists():
        pytest.skip(f"no committed {name} world model")
    model, record = load_checkpoint(ckpt)
    domain_file = ROOT / record["domain_file"]
    if not domain_file.exists():
        pytest.skip(f"no {domain_file} (PlanBench) for the {name} world model")
    return ckpt, model, record, load_domain(domain_file)


TRAINED = (DEFAULT_DIR / "projector.pt").exists()


needs_trained = pytest.mark.skipif(not TRAINED, reason="no trained decoder in checkpoints/decoder")


def gen_problem(domain, n=4, seed=0):
    gen = ProblemGenerator(domain, None, random.Random(seed))
    p = gen.sample(n)
    plan = parse_plan_text("\n".join(solve(Task(domain, p)).plan), domain, p)
    return p, plan


def tiny_world(domain):
    model = WorldModel(Vocabulary.from_domain(domain), WorldModelConfig(dim=32, heads=2)).eval()
    return model


def code_projector(hidden=16, k=8, **kw):
    """A projector with a codebook of k made-up codes (the real ones: `code_tokens`)."""
    return PlanProjector(
        32, hidden, 0.05, list(range(k)), [chr(0x4E00 + i) for i in range(k)], torch.randn(k, hidden), **kw
    )


def tiny_latents(model, p, plan, seed=0):
    lw = LatentWorld(model, list(p.objects), seed, p.init)
    traj = lw.unroll(lw.encode([lw.fact_ids(p.init)]), [lw.symbols.action_index[a] for a in plan])
    return PlanLatents.from_plan(model, lw.ids[0], plan, lw.symbols, traj)


class CharTokens(Tokens):
    """Characters as token ids (a stand-in tokenizer for the projector's own tests)."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, text):
        return [ord(c) % 300 for c in text]


def committed_items(planbench, n=6, seed=7):
    """Decoder inputs for generated blocksworld problems, planned by the committed world model."""
    from eval.faithfulness import decode_item
    from eval.suites import load_suite
    from planner.api import Planner
    from planner.worlds.pddl import load_domain

    inst = load_suite("planbench:blocksworld", planbench, limit=1)[0]
    d = load_domain(inst.domain_path)
    vb = Verbalizer(d, NLConfig.load(inst.nl_config_path))
    planner = Planner.load(ROOT / "checkpoints" / f"{d.name}.pt")
    gen = ProblemGenerator(d, None, random.Random(seed))
    items = []
    while len(items) < n:
        p = gen.sample(random.Random(seed + len(items)).randint(3, 5))
        r = planner.plan(list(p.objects), p.init, p.goal)
        if r.status == "solved":
            items.append(decode_item(d.name, planner, vb, p, r))
    return items


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
