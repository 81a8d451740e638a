"""`Decoder`: the latent plan -> answer text, and a predicted latent state -> its description (`describe`). The
projector runs in this process (it needs only the base model's embedding matrix, read from the safetensors file, not
the model); a backend generates with the LoRA adapter, merged into the base weights (decoder.merge: far faster on
vLLM-CPU than LoRA at run time).

The answer is written a line a round (decoder/prompt.py): round 0 writes the explanation, round t + 1 puts in step
t's number and soft vectors and the language model writes that step's line. Every round of a batch of answers is
one batched backend call."""

from __future__ import annotations

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
    answer_rounds,
    build_prompt,
    build_state_prompt,
    read_answer,
    read_state,
    strip_codes,
)
from planner.encoding import ProblemSymbols
from planner.worlds.nl import Verbalizer

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "decoder"
ADAPTER = "plan"
LINE_TOKENS = 64  # the most tokens one round writes (a line is 5-25)


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
        """Answers to (item, mode) jobs, one batched backend call a round (round t + 1 puts in step t's line
        number and soft vectors, and the language model writes the line: `answer_rounds`)."""
        if not jobs:
            return []
        states = [_Rounds(self, item, mode) for item, mode in jobs]
        groups: dict[str, list[_Rounds]] = {}  # one batch per adapter
        for (item, _), st in zip(jobs, states):
            groups.setdefault(self.adapter(item.world), []).append(st)
        for adapter, group in groups.items():
            for r in range(max(len(st.rounds) for st in group)):
                live = [st for st in group if r < len(st.rounds)]
                reqs = [st.begin(r) for st in live]
                for st, o in zip(live, self.backend.generate(reqs, adapter, _line_sampling(sampling, r))):
                    st.wrote(o.text, o.tokens_out, o.finish_reason)
        return [st.done() for st in states]

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
            req = st.begin(r)
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
            st.wrote(written, 0, "stop")
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


class _Rounds:
    """One answer being decoded: the prompt's embeddings grown round by round with the text put in, the step's
    soft vectors and the line the language model wrote (re-tokenized, as in training)."""

    def __init__(self, decoder: Decoder, item: DecodeItem, mode: str):
        self.dec = decoder
        self.spec = build_prompt(item.verbalizer, item.objects, item.init, item.goal, item.actions, mode)
        self.vectors = decoder.slots(item.world, self.spec, item.plan)
        # the lines keep the codes the decoder writes; the answer returned does not
        self.chars = decoder.projectors[item.world][0].config["code_chars"]
        self.parts = [assemble(self.spec, decoder.tokens, decoder.embed, self.vectors)]
        self.rounds = answer_rounds(item.plan.steps)
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


def max_state_tokens(items: list[StateItem]) -> int:
    """Room for every fact of a blocks-like state (about 2 facts an object, 12 tokens a fact) and more."""
    return 32 + 32 * max((len(it.objects) for it in items), default=0)


def max_answer_tokens(items: list[DecodeItem]) -> int:
    return 48 + 24 * max((len(it.actions) for it in items), default=0)
