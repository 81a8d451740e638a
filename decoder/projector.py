"""The plan projector: the world model's latent plan -> soft-prompt vectors in the base model's embedding space.

Input (`PlanLatents`): the objects' identity vectors, and per step the operator's embedding in the world model's
action encoder, the argument positions and the predicted latent state after the step (from the plan's latent
trajectory). Output: one vector per legend entry and, per step, an operator vector (operator + predicted state +
step position) followed by one vector per argument (the argument's identity vector, through the same map as the
legend, plus its role). The language model binds identities to names through the legend.

Two choices make that binding easier to learn (`ami-agent train decoder` takes both): `center`, the problem's object
codes minus their mean (what all of a problem's objects share says nothing about which one is meant), and one object
map shared by all the worlds' projectors (`shared`): the adapter then learns a single way of matching an argument
to its legend entry, instead of one per world (the last two runs with a map per world each bound one world's names
well and the other's poorly; README, "The decoder").

`legend_names` (`train decoder --legend-names`): each legend vector also carries its object's name, the mean of the
name's token embeddings (minus the problem's mean name, through a learned map that starts as the identity). The
legend is the problem's objects, not the plan: the name rides on the legend entry an argument's identity matches,
so one attention lookup (match the identity, copy the name) binds an argument, instead of matching the identity and
then reading the tokens after it. Arguments carry identities only, never names. Tried once and not better (after
400 examples no more random-walk plans were read back: README, "The decoder"), so it is off by default.

`codebook` (`train decoder --codebook`): objects are told apart by token codes instead of learned vectors. Each
problem's objects are ranked by their identity vectors' projection on a fixed random direction, and the k-th gets the
k-th of a fixed list of token embeddings (`code_tokens`: single CJK characters, which no object name here uses).
The legend entry and every argument of that object are that same embedding; arguments still come only from the
plan's latent identities, and the codes are arbitrary symbols, not names (a different problem gives the same
object another code). A pretrained model already copies what followed an earlier occurrence of the same token
(induction), so binding an argument to its legend entry needs far less learning than matching learned vectors.
`code_chars` (`train decoder --write-codes`): the codes' characters, for a decoder that writes each argument's code
before its name (decoder/prompt.py, `codes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from decoder.prompt import PromptSpec, Slot


@dataclass
class PlanLatents:
    identities: torch.Tensor  # (N, D) the objects' identity vectors (one draw)
    operators: torch.Tensor  # (T, D) each step's operator embedding (the world model's action encoder)
    arguments: list[list[int]]  # per step, the argument positions into `identities`
    states: torch.Tensor  # (T+1, N+1, D) predicted latent states along the plan (one draw)

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
        max_steps: int = 128,
        max_arity: int = 4,
        center: bool = False,
        shared: PlanProjector | None = None,
        legend_names: bool = False,
        interleave: bool = False,
        codebook: list[int] | None = None,
        codes: torch.Tensor | None = None,
        code_chars: list[str] | None = None,
    ):
        """interleave: the decoder this projector belongs to writes interleaved answers (decoder/prompt.py); the
        vectors are the same, only where they go differs. codebook: the code tokens' ids (`code_tokens`), with
        `codes` their embeddings (K, hidden) (loading fills them from the state dict). center: subtract the mean
        of the problem's object codes. shared: a projector whose object map (object codes, roles, output norm
        and scale) this one uses, the same modules, trained together; it needs the same latent width and arity.
        code_chars: the code tokens' characters, given when the decoder writes the codes (`code_map`)."""
        super().__init__()
        self.config = {
            "latent_dim": latent_dim,
            "hidden": hidden,
            "embed_rms": embed_rms,
            "max_steps": max_steps,
            "max_arity": max_arity,
            "center": center,
            "legend_names": legend_names,
            "interleave": interleave,
            "codebook": list(codebook) if codebook else None,
            "code_chars": list(code_chars) if code_chars else None,
        }
        if code_chars and (not codebook or not interleave or len(code_chars) != len(codebook)):
            raise ValueError(
                "written codes need a codebook (one character per code) and an interleaved answer"
            )
        if codebook:
            if legend_names:
                raise ValueError("codebook and legend_names are two ways to tell objects apart: choose one")
            if codes is not None and tuple(codes.shape) != (len(codebook), hidden):
                raise ValueError(f"codes must be ({len(codebook)}, {hidden}), got {tuple(codes.shape)}")
            self.register_buffer(
                "codes",
                codes.detach().float().clone() if codes is not None else torch.zeros(len(codebook), hidden),
            )
            g = torch.Generator().manual_seed(0)
            self.register_buffer("code_dir", torch.randn(latent_dim, generator=g))
        if shared is not None:
            mine = {k: self.config[k] for k in ("latent_dim", "hidden", "max_arity", "legend_names")}
            theirs = {k: shared.config[k] for k in mine}
            if mine != theirs:
                raise ValueError(f"cannot share an object map between projectors of {mine} and {theirs}")
            self.obj, self.role, self.norm, self.scale = shared.obj, shared.role, shared.norm, shared.scale
            if legend_names:
                self.names = shared.names
        else:
            self.obj = _mlp(latent_dim, hidden)
            self.role = nn.Embedding(max_arity + 1, hidden)  # 0: legend entry, k: k-th argument
            nn.init.normal_(self.role.weight, std=0.02)
            self.norm = nn.LayerNorm(hidden)
            self.scale = nn.Parameter(torch.tensor(float(embed_rms)))
            if legend_names:
                self.names = nn.Linear(hidden, hidden, bias=False)
                with torch.no_grad():
                    self.names.weight.copy_(torch.eye(hidden))
        self.op = _mlp(latent_dim, hidden)
        self.state = _mlp(2 * latent_dim, hidden)
        self.step_pos = nn.Embedding(max_steps, hidden)
        nn.init.normal_(self.step_pos.weight, std=0.02)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale

    def forward(
        self, plan: PlanLatents, names: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> legend vectors (N, H), and per step a (1 + arity, H) block. names: (N, H) the objects' name vectors
        (`name_vectors`), needed when the projector was made with `legend_names`."""
        if plan.steps > self.step_pos.num_embeddings:
            raise ValueError(
                f"a plan of {plan.steps} steps is longer than the projector's {self.step_pos.num_embeddings}"
            )
        if self.config.get("codebook"):
            return self._coded(plan)
        objs = self.obj(plan.identities)  # (N, H)
        if self.config["center"]:
            objs = objs - objs.mean(0, keepdim=True)
        legend = self._out(objs + self.role.weight[0])
        if self.config.get("legend_names"):
            if names is None or names.shape != legend.shape:
                raise ValueError(
                    f"this projector puts names on its legend: it needs the {legend.shape[0]} objects' name "
                    f"vectors of width {legend.shape[1]}, got {None if names is None else tuple(names.shape)}"
                )
            names = names.to(legend.dtype)
            legend = legend + self.names(names - names.mean(0, keepdim=True))
        steps = []
        if plan.steps:
            head = self._head(plan)
            for t, args in enumerate(plan.arguments):
                rows = [head[t]] + [objs[a] + self.role.weight[k + 1] for k, a in enumerate(args)]
                steps.append(self._out(torch.stack(rows)))
        return legend, steps

    def object_codes(self, identities: torch.Tensor) -> torch.Tensor:
        """(N,) each object's code: its rank by identity vector along the fixed direction."""
        n, k = identities.shape[0], self.codes.shape[0]
        if n > k:
            raise ValueError(f"a problem of {n} objects has more objects than the projector's {k} codes")
        order = torch.argsort(identities.float() @ self.code_dir)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=order.device)
        return rank

    def code_map(self, plan: PlanLatents, objects: list[str]) -> dict[str, str]:
        """object -> the character of its code (the same code its legend entry and arguments carry)."""
        chars = self.config.get("code_chars")
        if not chars:
            raise ValueError("this projector's decoder does not write codes")
        return {o: chars[int(k)] for o, k in zip(objects, self.object_codes(plan.identities))}

    def _coded(self, plan: PlanLatents) -> tuple[torch.Tensor, list[torch.Tensor]]:
        codes = self.codes[self.object_codes(plan.identities)]  # (N, H)
        steps = []
        if plan.steps:
            head = self._head(plan)
            for t, args in enumerate(plan.arguments):
                steps.append(torch.cat([self._out(head[t : t + 1]), codes[args]]))
        return codes, steps

    def _head(self, plan: PlanLatents) -> torch.Tensor:
        """(T, H) each step's operator, predicted state and position (before the output norm)."""
        n = plan.identities.shape[0]
        after = plan.states[1:]  # (T, N+1, D)
        state_in = torch.cat([after[:, n], after[:, :n].mean(1)], -1)
        return self.op(plan.operators) + self.state(state_in) + self.step_pos.weight[: plan.steps]

    def slots(
        self, plan: PlanLatents, spec: PromptSpec, names: torch.Tensor | None = None
    ) -> dict[Slot, torch.Tensor]:
        legend, steps = self(plan, names)
        out = {}
        for s in spec.segments:
            if isinstance(s, Slot):
                out[s] = legend[s.index : s.index + 1] if s.kind == "object" else steps[s.index]
        return out


def name_vectors(spec: PromptSpec, tokenize, embed) -> torch.Tensor:
    """(N, H): each legend object's name (`spec.names`, as the prompt writes it) as the mean of its tokens'
    embeddings (`tokenize`: str -> ids, `embed`: ids -> (n, H))."""
    rows = [embed(torch.tensor(tokenize(" " + n), dtype=torch.long)).float().mean(0) for n in spec.names]
    return torch.stack(rows)


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
