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
        return cls(
            identities.detach().float(), op_emb.reshape(len(ops), -1), args, trajectory.detach().float()
        )

    @property
    def steps(self) -> int:
        return len(self.arguments)


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
    ):
        """codebook: the code tokens' ids (`code_tokens`), `codes` their embeddings (K, hidden) (loading fills them
        from the state dict), `code_chars` their characters. shared: a projector whose output norm and scale this
        one uses (one world's projector shares them with another's of the same widths, trained together)."""
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

    def slots(self, plan: PlanLatents, spec: PromptSpec) -> dict[Slot, torch.Tensor]:
        """Every slot of the prompt (the answer's slots are the prompt's plan slots again) -> its vectors."""
        legend, steps = self(plan)
        out = {}
        for s in spec.segments:
            if isinstance(s, Slot):
                out[s] = legend[s.index : s.index + 1] if s.kind == "object" else steps[s.index]
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
        p.load_state_dict({k: v.float() for k, v in entry["state_dict"].items()})
        out[name] = (p.eval(), entry)
    return out
