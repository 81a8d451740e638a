"""decoder/api.py: `Decoder` on the committed decoder, decoded a line a round, streamed, alike on both backends."""

import torch
from support import committed_items, gen_problem, needs_trained, tiny_latents, tiny_world

from decoder import api
from decoder.api import Decoder
from decoder.backends import Sampling
from decoder.projector import PlanProjector
from decoder.prompt import Slot, answer_rounds, answer_text, build_prompt
from planner.worlds.nl import Verbalizer


@needs_trained
def test_vllm_and_transformers_decode_latent_plans_alike(
    vllm_backend, hf_backend, model_dir, planbench, monkeypatch
):
    items = committed_items(planbench)
    via_vllm = Decoder(vllm_backend, model_dir).decode(items, "latent")
    # on vLLM the lines were written in parallel rounds: the same text as one round a line
    with monkeypatch.context() as m:
        m.setattr(api, "PARALLEL_LINES", 0)
        serial = Decoder(vllm_backend, model_dir).decode(items, "latent")
    assert [d.raw or d.text for d in serial] == [d.raw or d.text for d in via_vllm]
    # the drafts written beside the lines and the longest prompts read alone (a token each) are paid for
    assert sum(d.tokens_out for d in via_vllm) > sum(d.tokens_out for d in serial)
    via_hf = Decoder(hf_backend, model_dir).decode(items, "latent")
    same = sum(a.text.strip() == b.text.strip() for a, b in zip(via_vllm, via_hf))
    assert same >= len(items) - 1, [(a.text, b.text) for a, b in zip(via_vllm, via_hf)]
    # the committed decoder reads every plan back: with the first codes, or (the agent's next round) with codes
    # drawn at random from the whole codebook
    dec = Decoder(vllm_backend, model_dir)
    # the end state is said for problems within the sizes the decoder trained on (3-8 objects)
    world = items[0].world
    assert dec.trained_objects == 8 and dec.describes_well(world, 8) and not dec.describes_well(world, 9)
    missed = [it for it, d in zip(items, via_vllm) if not d.faithful]
    assert len(missed) <= 1, [d.raw for d in via_vllm if not d.faithful]
    assert all(d.faithful for d in dec.decode([dec.with_codes(it, 1) for it in missed], "latent"))
    assert sum(d.faithful for d in dec.decode(items, "latent+text")) >= len(items) - 1


@needs_trained
def test_streaming_equals_generate(vllm_backend, hf_backend, model_dir, planbench):
    item = committed_items(planbench, n=1, seed=5)[0]
    # the explanation and the first steps (transformers decodes ~0.12 s a token here)
    s = Sampling(max_tokens=40)
    for backend in (vllm_backend, hf_backend):
        dec = Decoder(backend, model_dir)
        whole = dec.decode([item], sampling=s)[0].text
        pieces = list(dec.stream(item, sampling=s))
        assert len(pieces) > 3
        assert "".join(pieces).strip() == whole.strip()


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


class _Recorded(_Scripted):
    """A backend edge for parallel rounds, replaying what serial rounds wrote. `strict`: the recorded line only
    after exactly the recorded prompt, a wrong line after any other (a model that needs every earlier line right);
    else the recorded line of the round whatever the lines before it (a round is told by its last rows, the
    step's number and vectors)."""

    def __init__(self, serial: _Scripted, written, strict: bool):
        super().__init__([])
        self.strict = strict
        self.seen = {self._key(reqs[0]): line for (reqs, _), line in zip(serial.calls, written)}

    def _key(self, r):
        return (r.prompt_embeds if self.strict else r.prompt_embeds[-4:]).float().numpy().tobytes()

    def in_flight(self, adapter):
        return 0

    def generate(self, requests, adapter=None, sampling=None):
        from decoder.backends import Completion

        self.calls.append((requests, sampling))
        lines = [self.seen.get(self._key(r), " put the table on the hand") for r in requests]
        return [Completion(line + "\nextra line", r.length, 5) for line, r in zip(lines, requests)]


def test_decoder_writes_a_line_a_round(bw_domain, model_dir, tmp_path):
    """The answer is decoded a round per line: each round's prompt is the last one, the line the language model
    wrote (codes and all) and the next step's number and vectors; the codes are cut from the answer returned."""
    from transformers import AutoTokenizer

    from decoder.api import DecodeItem, load_embedding_matrix
    from decoder.projector import code_tokens
    from decoder.prompt import coded_action

    model = tiny_world(bw_domain)
    p, plan = gen_problem(bw_domain, 4, 6)
    vb = Verbalizer(bw_domain)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = code_tokens(tok, 8)
    chars = [tok.decode([i]) for i in ids]
    proj = PlanProjector(32, 576, 0.05, ids, chars, load_embedding_matrix(model_dir)[ids].float())
    entry = {"config": proj.config, "state_dict": proj.state_dict(), "checkpoint": "bw.pt", "domain": "bw"}
    torch.save({"worlds": {"bw": entry}}, tmp_path / "projector.pt")
    item = DecodeItem("bw", vb, list(p.objects), p.init, p.goal, plan, tiny_latents(model, p, plan))
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
    # another draw of codes (the agent's later rounds): seeded, distinct, from the whole book; the item untouched
    drawn = dec.with_codes(item, 1)
    assert drawn.plan.order == dec.with_codes(item, 1).plan.order != dec.with_codes(item, 2).plan.order
    assert len(set(drawn.plan.order)) == len(p.objects) and max(drawn.plan.order) < 8
    assert item.plan.order is None and drawn.actions == item.actions
    # parallel rounds (a backend that says how busy it is): every line at once after the latest drafts, the first
    # drafts the answer's lines as trained (the explanation too); a line is kept when the lines before it came out
    # unchanged. The answer is the serial one: in 1 call where the model writes the lines as trained (every line,
    # the explanation with them, confirmed at once). Where it writes them otherwise (no codes, here): in 2 calls
    # where each line is written the same whatever comes before it (one to draft, one to confirm), and in one call a
    # line, less the explanation's, where a line is written so only after the same lines (the worst case)
    uncoded = [head] + [" " + vb.action(s) for s in plan]
    serial_uncoded = _Scripted(uncoded)
    plain = Decoder(serial_uncoded, model_dir, tmp_path).decode([item])[0]
    for lines, serial, strict, most in (
        (written, backend, False, 1),
        (written, backend, True, 1),
        (uncoded, serial_uncoded, False, 2),
        (uncoded, serial_uncoded, True, len(plan)),
    ):
        parallel = _Recorded(serial, lines, strict)
        again = Decoder(parallel, model_dir, tmp_path).decode([item])[0]
        want = out if lines is written else plain
        assert again.text == want.text and again.raw == want.raw
        calls = [
            len(reqs) for reqs, s in parallel.calls if s.max_tokens > 1
        ]  # longest prompts read first: 1 token
        assert calls[0] == len(plan) + 1 and len(calls) == most, (strict, calls)
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
