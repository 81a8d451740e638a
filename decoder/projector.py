"""The plan projector: the world model's latent plan -> soft-prompt vectors in the base model's embedding space.

Input (`PlanLatents`): the objects' identity vectors, and per step the operator's embedding in the world model's
action encoder, the argument positions and the predicted latent state after the step (from the plan's latent
trajectory). Output: one vector per legend entry and, per step, an operator vector (operator + predicted state +
step position) followed by one vector per argument.

Objects are told apart by token codes, not by learned vectors: each problem's objects are ranked by their identity
vectors' projection on a fixed random direction, and the k-th gets the k-th of a fixed list of token embeddings
(`code_tokens`: single CJK characters, which no object name uses). The legend entry and every argument of that
object are that same embedding; arguments come only from the plan's latent identities, and the codes are arbitrary
symbols, not names (another problem gives the same object another code). Training gives each plan's ranks a random
set of the codes in random order (`PlanLatents.order`), so every code is bound to names as often as any other and a
problem of more objects than any trained on still has codes the decoder knows how to copy; decoding uses the
codebook's own order. A pretrained model already copies what
followed an earlier occurrence of the same token (induction), so binding an argument to its legend entry needs
little learning. The decoder also writes each argument's code before its name (decoder/prompt.py), so
`code_chars` holds the codes' characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from decoder.prompt import PromptSpec, Slot, split_codes


@dataclass
class PlanLatents:
    identities: torch.Tensor  # (N, D) the objects' identity vectors (one draw)
    operators: torch.Tensor  # (T, D) each step's operator embedding (the world model's action encoder)
    arguments: list[list[int]]  # per step, the argument positions into `identities`
    states: torch.Tensor  # (T+1, N+1, D) predicted latent states along the plan (one draw)
    # the codes the objects' ranks take, by rank (training draws them at random from the whole codebook, so that
    # every code is learned, not only the first few; None: the codebook's own order, rank k -> code k)
    order: list[int] | None = None

    @classmethod
    def from_plan(
        cls, model, identities: torch.Tensor, actions, symbols, trajectory: torch.Tensor, draw: int = 0
    ) -> PlanLatents:
        """From a world model, one draw's identity vectors (N, D), the plan's ground actions, the problem's
        symbols and its latent trajectory ((T+1, N+1, D), or (T+1, E, N+1, D) of which draw `draw` is used)."""
        if trajectory.dim() == 4:
            trajectory = trajectory[:, draw]
        ops = [model.vocab.actions.index((a[0], len(a) - 1)) for a in actions]
        with torch.no_grad():
            op_emb = model.predictor.action.symbol(torch.tensor(ops, dtype=torch.long)).float()
        args = [[symbols.object_index[o] for o in a[1:]] for a in actions]
        return cls(identities.detach().float(), op_emb, args, trajectory.detach().float())

    @property
    def steps(self) -> int:
        return len(self.arguments)

    def state_at(self, t: int) -> StateLatents:
        """The predicted latent state before the plan (t = 0) or after step t."""
        return StateLatents(self.identities, self.states[t], self.order)


@dataclass
class StateLatents:
    """One predicted latent state to put into words: the objects' identity vectors (N, D) (they give the codes) and
    the state's latents (N+1, D): one vector per object, then the global one."""

    identities: torch.Tensor
    state: torch.Tensor
    order: list[int] | None = None


class PlanProjector(nn.Module):
    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        embed_rms: float,
        codebook: list[int],
        code_chars: list[str],
        codes: torch.Tensor | None = None,
        max_steps: int = 128,
        shared: PlanProjector | None = None,
        relations: int = 1,
        unary: int = 0,
        nullary: int = 0,
    ):
        """codebook: the code tokens' ids (`code_tokens`), `codes` their embeddings (K, hidden) (loading fills them
        from the state dict), `code_chars` their characters. shared: a projector whose output norm and scale this
        one uses (one world's projector shares them with another's of the same widths, trained together).
        relations: the world's binary predicates, one pointer each in a described state; unary, nullary: its
        predicates of one and of no argument (the state head's auxiliary read-outs in training)."""
        super().__init__()
        if len(code_chars) != len(codebook):
            raise ValueError(f"{len(codebook)} codes need as many characters, got {len(code_chars)}")
        self.config = {
            "latent_dim": latent_dim,
            "hidden": hidden,
            "embed_rms": embed_rms,
            "codebook": list(codebook),
            "code_chars": list(code_chars),
            "max_steps": max_steps,
            "relations": relations,
            "unary": unary,
            "nullary": nullary,
        }
        if codes is not None and tuple(codes.shape) != (len(codebook), hidden):
            raise ValueError(f"codes must be ({len(codebook)}, {hidden}), got {tuple(codes.shape)}")
        self.register_buffer(
            "codes",
            codes.detach().float().clone() if codes is not None else torch.zeros(len(codebook), hidden),
        )
        g = torch.Generator().manual_seed(0)
        self.register_buffer("code_dir", torch.randn(latent_dim, generator=g))
        if shared is not None:
            if (shared.config["latent_dim"], shared.config["hidden"]) != (latent_dim, hidden):
                raise ValueError("a shared output map needs projectors of the same widths")
            self.norm, self.scale = shared.norm, shared.scale
        else:
            self.norm = nn.LayerNorm(hidden)
            self.scale = nn.Parameter(torch.tensor(float(embed_rms)))
        self.op = _mlp(latent_dim, hidden)
        self.state = _mlp(2 * latent_dim, hidden)
        self.step_pos = nn.Embedding(max_steps, hidden)
        nn.init.normal_(self.step_pos.weight, std=0.02)
        # a described state (`state_slots`): each object's own latent, the global latent, and per binary predicate
        # a pointer: attention from the object's latent over the other objects' latents (and "none"), which mixes
        # their codes
        self.own = _mlp(latent_dim, hidden)
        self.world = _mlp(latent_dim, hidden)
        self.rel_pool = nn.Linear(hidden, 1)  # the global vector also pools the objects' own vectors
        # training's auxiliary read-outs: each object's one-argument facts from its vector, the state's
        # no-argument facts from the global one (they make the vectors say the facts plainly)
        self.rel_unary = nn.Linear(hidden, max(1, unary))
        self.rel_nullary = nn.Linear(hidden, max(1, nullary))
        self.rel_from = nn.Linear(latent_dim, POINTER * relations)
        self.rel_to = nn.Linear(latent_dim, POINTER * relations)
        self.rel_none = nn.Parameter(torch.zeros(relations, POINTER))
        self.rel_score = nn.Parameter(torch.randn(relations, POINTER) / POINTER**0.5)
        self.rel_empty = nn.Parameter(torch.randn(relations, hidden) * float(embed_rms))

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale

    def forward(self, plan: PlanLatents) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> legend vectors (N, H), and per step a (1 + arity, H) block: the step's vector, then its arguments'
        codes."""
        if plan.steps > self.step_pos.num_embeddings:
            raise ValueError(
                f"a plan of {plan.steps} steps is longer than the projector's {self.step_pos.num_embeddings}"
            )
        codes = self.codes[self.object_codes(plan.identities, plan.order)]  # (N, H)
        steps = []
        if plan.steps:
            head = self._head(plan)
            for t, args in enumerate(plan.arguments):
                steps.append(torch.cat([self._out(head[t : t + 1]), codes[args]]))
        return codes, steps

    def object_codes(self, identities: torch.Tensor, order: list[int] | None = None) -> torch.Tensor:
        """(N,) each object's code: its rank by identity vector along the fixed direction, mapped through `order`
        (rank -> code) when given."""
        n, k = identities.shape[0], self.codes.shape[0]
        if n > k:
            raise ValueError(f"a problem of {n} objects has more objects than the projector's {k} codes")
        by_rank = torch.argsort(identities.float() @ self.code_dir)
        rank = torch.empty_like(by_rank)
        rank[by_rank] = torch.arange(n, device=by_rank.device)
        if order is None:
            return rank
        if len(order) < n or len(set(order[:n])) < n or not all(0 <= c < k for c in order[:n]):
            raise ValueError(f"a code order for {n} objects needs {n} distinct codes below {k}, got {order}")
        return torch.tensor(order[:n], dtype=torch.long, device=rank.device)[rank]

    def code_map(self, plan: PlanLatents, objects: list[str]) -> dict[str, str]:
        """object -> the character of its code (the same code its legend entry and arguments carry)."""
        chars = self.config["code_chars"]
        return {o: chars[int(k)] for o, k in zip(objects, self.object_codes(plan.identities, plan.order))}

    def _head(self, plan: PlanLatents) -> torch.Tensor:
        """(T, H) each step's operator, predicted state and position (before the output norm)."""
        n = plan.identities.shape[0]
        after = plan.states[1:]  # (T, N+1, D)
        state_in = torch.cat([after[:, n], after[:, :n].mean(1)], -1)
        return self.op(plan.operators) + self.state(state_in) + self.step_pos.weight[: plan.steps]

    def pointer_logits(self, state: StateLatents) -> torch.Tensor:
        """(N, R, N + 1): per object and binary predicate, a score for each object as its second argument, and for
        none (last). An object never points at itself."""
        n = state.identities.shape[0]
        r = self.config["relations"]
        s = state.state[:n].float()
        a = self.rel_from(s).view(n, r, POINTER)
        b = self.rel_to(s).view(n, r, POINTER)
        pair = torch.nn.functional.gelu(a.unsqueeze(2) + b.transpose(0, 1).unsqueeze(0))  # (N, R, N, P)
        none = torch.nn.functional.gelu(a + self.rel_none)  # (N, R, P)
        scores = torch.cat([pair, none.unsqueeze(2)], 2) @ self.rel_score.unsqueeze(-1)  # (N, R, N+1, 1)
        scores = scores.squeeze(-1)
        self_mask = torch.eye(n, dtype=torch.bool, device=s.device).unsqueeze(1)  # (N, 1, N)
        scores[..., :n] = scores[..., :n].masked_fill(self_mask, float("-inf"))
        return scores

    def state_slots(self, state: StateLatents, spec: PromptSpec) -> dict[Slot, torch.Tensor]:
        """A described state's slots: ("object", i) object i's code; ("state", i) its own latent's vector, then one
        pointer per binary predicate (the mixture of the codes its attention picks, or "none"'s vector);
        ("world", 0) the global latent's vector, with a pool of the objects' own."""
        codes = self.codes[self.object_codes(state.identities, state.order)]  # (N, H)
        weights = self.pointer_logits(state).softmax(-1)  # (N, R, N+1)
        r = self.config["relations"]
        targets = torch.cat(
            [codes.unsqueeze(0).expand(r, -1, -1), self.rel_empty.unsqueeze(1)], 1
        )  # (R, N+1, H)
        pointers = torch.einsum("nrk,rkh->nrh", weights, targets)
        own, world = (self._out(v) for v in self._state_hidden(state))
        out = {}
        for s in spec.segments:
            if not isinstance(s, Slot):
                continue
            if s.kind == "object":
                out[s] = codes[s.index : s.index + 1]
            elif s.kind == "state":
                out[s] = torch.cat([own[s.index : s.index + 1], pointers[s.index]])
            elif s.kind == "world":
                out[s] = world
        return out

    def _state_hidden(self, state: StateLatents) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, H) the objects' own vectors and (1, H) the global one, before the output norm."""
        n = state.identities.shape[0]
        own = self.own(state.state[:n].float())
        pool = (self.rel_pool(own).softmax(0) * own).sum(0, keepdim=True)
        return own, self.world(state.state[n:].float()) + pool

    def fact_logits(self, state: StateLatents) -> tuple[torch.Tensor, torch.Tensor]:
        """Training's auxiliary read-outs: (N, U) each object's one-argument facts, (1, Z) the no-argument ones."""
        own, world = self._state_hidden(state)
        return self.rel_unary(own), self.rel_nullary(world)

    def slots(self, plan: PlanLatents, spec: PromptSpec) -> dict[Slot, torch.Tensor]:
        """Every slot of the prompt (the answer's slots are the prompt's plan slots again) -> its vectors."""
        legend, steps = self(plan)
        out = {}
        for s in spec.segments:
            if isinstance(s, Slot):
                out[s] = legend[s.index : s.index + 1] if s.kind == "object" else steps[s.index]
        return out


STATE_HEAD = ("own.", "world.", "rel_")  # the parameters that describe states (stage 2 of the training)
POINTER = 128  # the width of a state pointer's attention scores


def predicate_names(domain, arity: int) -> list[str]:
    """The domain's predicates of that arity, sorted (the order of a projector's state read-outs)."""
    return sorted(p for p, a in domain.predicates.items() if a == arity)


def fact_targets(objects: list[str], facts, unary: list[str], nullary: list[str]):
    """(N, U) and (1, Z) 0/1: which one-argument facts hold of each object, which no-argument facts hold."""
    place = {o: i for i, o in enumerate(objects)}
    u = torch.zeros(len(objects), max(1, len(unary)))
    z = torch.zeros(1, max(1, len(nullary)))
    for a in facts:
        if len(a) == 2 and a[0] in unary:
            u[place[a[1]], unary.index(a[0])] = 1.0
        elif len(a) == 1 and a[0] in nullary:
            z[0, nullary.index(a[0])] = 1.0
    return u, z


def pointer_targets(objects: list[str], facts, relations: list[str]) -> torch.Tensor:
    """(N, R) per object and binary predicate: the index of the object it relates to, N for none."""
    place = {o: i for i, o in enumerate(objects)}
    out = torch.full((len(objects), len(relations)), len(objects), dtype=torch.long)
    for a in facts:
        if len(a) == 3 and a[0] in relations:
            out[place[a[1]], relations.index(a[0])] = place[a[2]]
    return out


def code_tokens(tokenizer, k: int = 64) -> list[int]:
    """The first k ids (in id order) of the tokens that are one CJK character and encode as themselves alone."""
    out = []
    for i in range(len(tokenizer)):
        s = tokenizer.decode([i])
        if (
            len(s) == 1
            and 0x4E00 <= ord(s) <= 0x9FFF
            and tokenizer(s, add_special_tokens=False)["input_ids"] == [i]
        ):
            out.append(i)
            if len(out) == k:
                return out
    raise ValueError(f"the tokenizer has only {len(out)} single-character CJK tokens, fewer than {k} codes")


def _mlp(i: int, o: int, width: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, width), nn.GELU(), nn.Linear(width, o))


def assemble(spec: PromptSpec, tokenize, embed, slots: dict[Slot, torch.Tensor]) -> torch.Tensor:
    """Prompt embeddings (L, H): text segments through `tokenize` (str -> ids) and `embed` (ids -> (n, H)), slots
    from the projector, in the text embeddings' dtype."""
    parts = [
        slots[s] if isinstance(s, Slot) else embed(torch.tensor(tokenize(s), dtype=torch.long))
        for s in spec.segments
    ]
    dtype = next(p.dtype for s, p in zip(spec.segments, parts) if not isinstance(s, Slot))
    return torch.cat([p.to(dtype) for p in parts], 0)


class Tokens:
    """Text -> token ids with a cache (prompts repeat the same fixed pieces)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.cache: dict[str, list[int]] = {}

    def __call__(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if len(self.cache) < 50_000:
                self.cache[text] = ids
        return ids

    def coded(self, text: str, chars) -> list[int]:
        """Text in which code characters (`chars`) stand alone: each is its own token, the rest as `__call__`."""
        return [i for piece in split_codes(text, chars) for i in self(piece)]


def projector_state(projector: PlanProjector) -> dict:
    """The weights in fp16 (half the file); the codebook's buffers (its codes and ranking direction) as they are."""
    keep = {"codes", "code_dir"}
    return {k: v if k in keep else v.half() for k, v in projector.state_dict().items()}


def load_projectors(path: Path) -> dict[str, tuple[PlanProjector, dict]]:
    """projector.pt -> world name -> (its projector, its entry: config, checkpoint and domain names)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name, entry in blob["worlds"].items():
        p = PlanProjector(**entry["config"])
        state = {k: v.float() for k, v in entry["state_dict"].items()}
        # a projector saved before states were described: its state head stays untrained
        p.load_state_dict(state, strict="relations" in entry["config"])
        out[name] = (p.eval(), entry)
    return out
