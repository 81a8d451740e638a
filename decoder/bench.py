"""`ami-agent bench decoder`: both backends in one process, on the same inputs.

Throughput workloads: (a) 32 PlanBench-length requests (the world's description shared by all, a generated
problem, the soft plan; about 600 prompt tokens) with the LoRA adapter and plan embeddings, 128 new tokens each;
(b) 32 short chat prompts as token ids, no adapter, 64 new tokens. Every request generates exactly its token
budget (end-of-sequence ignored), so both backends do the same work.

Parity: greedy answers of both backends to the same fixed decoder inputs (latent mode, adapter on), same dtype,
decoded as the decoder decodes them (a line a round, each round's prompt holding
the lines written before, so a difference in one line carries into the rest).
"""

from __future__ import annotations

import copy
import random
import time

from decoder.api import DecodeItem, Decoder
from decoder.backends import Backend, Request, Sampling
from decoder.data import ExampleSampler, World
from decoder.prompt import build_prompt

SHORT_PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Write a haiku about the sea.",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What does a compiler do?",
    "Explain photosynthesis in one sentence.",
    "How many legs does a spider have?",
]


def planbench_requests(decoder: Decoder, world: World, n: int = 32, seed: int = 0) -> list[Request]:
    sampler = ExampleSampler([world], (4, 6), 0.0, random.Random(seed))
    intro = world.verbalizer.config.domain_intro
    reqs = []
    for _ in range(n):
        ex = sampler.sample(world, "latent")
        spec = build_prompt(
            world.verbalizer, ex.objects, ex.init, ex.goal, ex.actions, "latent", preamble=intro
        )
        reqs.append(Request(prompt_embeds=decoder.embeds(world.name, spec, ex.plan)))
    return reqs


def short_requests(tokenizer, n: int = 32) -> list[Request]:
    out = []
    for i in range(n):
        q = SHORT_PROMPTS[i % len(SHORT_PROMPTS)]
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        out.append(Request(prompt_ids=list(ids)))
    return out


def run_workload(backend: Backend, reqs: list[Request], adapter: str | None, new_tokens: int) -> dict:
    s = Sampling(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    backend.generate(reqs[:1], adapter, Sampling(max_tokens=4))  # warm-up
    t0 = time.perf_counter()
    outs = backend.generate(reqs, adapter, s)
    sec = time.perf_counter() - t0
    toks = sum(o.tokens_out for o in outs)
    return {
        "requests": len(reqs),
        "prompt_tokens_mean": round(sum(r.length for r in reqs) / len(reqs), 1),
        "new_tokens": toks,
        "seconds": round(sec, 2),
        "tokens_per_second": round(toks / sec, 1),
    }


def parity_items(world: World, n: int = 100, seed: int = 1) -> list[DecodeItem]:
    sampler = ExampleSampler([world], (3, 5), 0.0, random.Random(seed))
    items = []
    for _ in range(n):
        ex = sampler.sample(world, "latent")
        items.append(
            DecodeItem(world.name, world.verbalizer, ex.objects, ex.init, ex.goal, ex.actions, ex.plan)
        )
    return items


def parity(
    decoder: Decoder, a: Backend, b: Backend, items: list[DecodeItem], max_tokens: int = 200, log=None
) -> dict:
    """The decoder's greedy answers to `items` on backend a and on backend b (both serving its adapter);
    log(line), when given, hears when each backend is done."""
    s = Sampling(max_tokens=max_tokens, temperature=0.0)
    texts = []
    for backend in (a, b):
        dec = copy.copy(decoder)  # the same projectors and embeddings, another backend
        dec.backend = backend
        t0 = time.perf_counter()
        # what was written, codes and all (a decoder that writes codes): stricter than the answer returned
        texts.append([d.raw or d.text for d in dec.decode(items, "latent", s)])
        if log:
            log(f"parity: {type(backend).__name__} answered {len(items)} in {time.perf_counter() - t0:.1f} s")
    ta, tb = texts
    same = sum(x.strip() == y.strip() for x, y in zip(ta, tb))
    return {
        "inputs": len(items),
        "identical": same,
        "rate": round(same / len(items), 4),
        "examples": list(zip(ta, tb))[:3],
    }
