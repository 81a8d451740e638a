"""The world model: an object-centric, action-conditioned JEPA for STRIPS worlds.

Enc(facts) -> latent state s: one D-vector per object plus one global vector, permutation-equivariant in the objects.
Pred(s, a) -> next latent state. A target encoder (EMA of Enc) gives the regression targets. Readouts on latents:
a fact probe, an applicability head, and a critic (steps to go to a goal: a transformer on the latent state, or a
relational network on the facts the probe reads off it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from planner.encoding import Vocabulary


@dataclass
class WorldModelConfig:
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 3
    predictor_layers: int = 3
    critic_layers: int = 2
    identity_slots: int = 64  # objects per problem draw distinct slots from this pool
    dropout: float = 0.0
    # "global": steps-to-go read from the global token; "sum": the global token's term plus one term per object, so
    # the estimate can grow with the number of objects (an attention critic's head; the relational critic sums)
    critic_head: str = "sum"
    # "full": every token attends to every other. "local" (the default; both committed checkpoints):
    # attention follows the facts, so what an object's latent holds depends on its neighbourhood, not on how many
    # objects the problem has (meant for sizes never trained on): in the encoder an object attends to itself, the
    # global token and the facts it is an argument of, a fact to itself, the global token and its arguments, the
    # global token to itself and the facts without arguments; in the predictor an object attends to itself, the
    # global token and the action, the action to itself, the global token and its arguments, the global token to
    # itself and the action. (A STRIPS action changes only facts over its arguments and facts without arguments.)
    attention: str = "local"
    # an attention critic's attention: "full" (every token attends to every other: the mystery checkpoint) or
    # "local": an object attends to itself, the global token and the goal facts it is an
    # argument of, a goal fact to itself, the global token and its arguments, the global token to itself and the
    # goal facts without arguments. With the "sum" head each object's term then depends on its neighbourhood in
    # the state and the goal, not on how many objects there are, so the estimate grows with the work to do on
    # problems larger than any trained on.
    critic_attention: str = "local"
    # "relational" (the default): `RelationalCritic`, message passing over the facts the probe reads off the latent
    # state and the goal facts, trained on exact steps-to-go of every state of small problems. "attention": the
    # transformer critic `Critic`, on the latent state and the goal facts (the mystery checkpoint)
    critic_kind: str = "relational"
    critic_dim: int = 64  # the relational critic's width
    critic_rounds: int = 0  # its message-passing rounds; 0: the problem's objects + 2


ATTENTION = ("full", "local")
CRITICS = ("attention", "relational")


def _transformer(
    dim: int, heads: int, layers: int, dropout: float, ffn_mult: int = 2
) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, ffn_mult * dim, dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _incidence(rows: torch.Tensor, n: int) -> torch.Tensor:
    """(B, K, 1+A) symbol rows -> (B, K, N) bool: object i is an argument of row k."""
    args = rows[..., 1:]
    objects = torch.arange(n, device=rows.device)
    return ((args.unsqueeze(-1) == objects) & (args >= 0).unsqueeze(-1)).any(-2)


def _local_mask(inc: torch.Tensor, heads: int, action: bool) -> torch.Tensor:
    """The "local" attention mask (True: blocked), (B*heads, L, L) for tokens [objects N, global, rows K].

    `inc` (B, K, N): which objects each row (a fact, or the action) names. Encoder (`action` False): object <-> the
    facts it is an argument of, global <-> facts without arguments. Predictor (`action` True): objects -> the
    action, the action -> its arguments, global <-> the action."""
    b, k, n = inc.shape
    length = n + 1 + k
    allowed = torch.zeros(b, length, length, dtype=torch.bool, device=inc.device)
    idx = torch.arange(length, device=inc.device)
    allowed[:, idx, idx] = True
    rows = slice(n + 1, length)
    allowed[:, n, rows] = True if action else ~inc.any(-1)  # global -> facts without arguments, or the action
    allowed[:, rows, n] = True  # rows -> global
    allowed[:, :n, n] = True  # objects -> global
    allowed[:, rows, :n] = inc  # a row -> its arguments
    allowed[:, :n, rows] = True if action else inc.transpose(1, 2)  # objects -> their facts, or the action
    return (~allowed).repeat_interleave(heads, 0)


class SymbolEmbedding(nn.Module):
    """(symbol, arg_1..arg_A) rows -> tokens: symbol embedding + a per-position projection of each argument's
    identity vector."""

    def __init__(self, n_symbols: int, max_arity: int, dim: int):
        super().__init__()
        self.symbol = nn.Embedding(n_symbols, dim)
        self.position = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(max_arity))
        self.norm = nn.LayerNorm(dim)

    def forward(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # rows: (B, K, 1+A) long, args -1 when absent; ids: (B, N, D) -> (B, K, D)
        tok = self.symbol(rows[..., 0])
        for i, proj in enumerate(self.position):
            arg = rows[..., 1 + i]
            present = (arg >= 0).unsqueeze(-1)
            gathered = torch.gather(ids, 1, arg.clamp(min=0).unsqueeze(-1).expand(-1, -1, ids.shape[-1]))
            tok = tok + proj(gathered) * present
        return self.norm(tok)


class Encoder(nn.Module):
    def __init__(self, vocab: Vocabulary, cfg: WorldModelConfig):
        super().__init__()
        self.facts = SymbolEmbedding(len(vocab.predicates), vocab.max_arity, cfg.dim)
        self.global_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.kind = nn.Embedding(3, cfg.dim)  # object, global, fact
        self.body = _transformer(cfg.dim, cfg.heads, cfg.encoder_layers, cfg.dropout)
        self.out = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, cfg.dim))
        self.local = cfg.attention == "local"
        self.heads = cfg.heads

    def forward(self, fact_rows: torch.Tensor, fact_pad: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # fact_rows: (B, K, 1+A) true facts; fact_pad: (B, K) True where padding; ids: (B, N, D) -> s: (B, N+1, D)
        b, n, _ = ids.shape
        objects = ids + self.kind.weight[0]
        glob = self.global_token.expand(b, -1, -1) + self.kind.weight[1]
        facts = self.facts(fact_rows, ids) + self.kind.weight[2]
        x = torch.cat([objects, glob, facts], dim=1)
        pad = torch.cat([torch.zeros(b, n + 1, dtype=torch.bool, device=ids.device), fact_pad], dim=1)
        mask = _local_mask(_incidence(fact_rows, n), self.heads, action=False) if self.local else None
        x = self.body(x, mask=mask, src_key_padding_mask=pad)
        return self.out(x[:, : n + 1])


class Predictor(nn.Module):
    def __init__(self, vocab: Vocabulary, cfg: WorldModelConfig):
        super().__init__()
        self.action = SymbolEmbedding(len(vocab.actions), vocab.max_arity, cfg.dim)
        self.identity = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.body = _transformer(cfg.dim, cfg.heads, cfg.predictor_layers, cfg.dropout)
        self.out = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, cfg.dim))
        self.local = cfg.attention == "local"
        self.heads = cfg.heads

    def forward(self, s: torch.Tensor, action_rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # s: (B, N+1, D); action_rows: (B, 1+A); ids: (B, N, D) -> (B, N+1, D)
        n = ids.shape[1]
        tag = torch.cat([self.identity(ids), torch.zeros_like(s[:, n:])], dim=1)
        a = self.action(action_rows.unsqueeze(1), ids)
        rows = action_rows.unsqueeze(1)
        mask = _local_mask(_incidence(rows, n), self.heads, action=True) if self.local else None
        x = self.body(torch.cat([s + tag, a], dim=1), mask=mask)
        return s + self.out(x[:, : n + 1])


class Readout(nn.Module):
    """Scores ground symbols (facts or actions) on a latent state. Factorised for speed: each argument position and
    the global token get a projection computed once per latent token, gathered per symbol, then a small MLP."""

    def __init__(self, n_symbols: int, max_arity: int, dim: int):
        super().__init__()
        self.symbol = nn.Embedding(n_symbols, dim)
        self.max_arity = max_arity
        self.argument = nn.Linear(dim, dim * max_arity)
        self.glob = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, s: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # s: (B, N+1, D); rows: (K, 1+A) shared by the batch -> logits (B, K)
        b, n1, d = s.shape
        n = n1 - 1
        per_arg = self.argument(s[:, :n]).view(b, n, self.max_arity, d)
        h = self.symbol(rows[:, 0]).unsqueeze(0) + self.glob(s[:, n:])  # (B, K, D)
        for i in range(self.max_arity):
            arg = rows[:, 1 + i]
            absent = arg < 0
            if bool(absent.all()):
                continue  # a position no symbol here uses (facts have fewer arguments than the widest action)
            x = per_arg[:, :, i]
            if bool(absent.any()):  # an absent argument reads a zero row
                x, arg = torch.cat([x, x.new_zeros(b, 1, d)], 1), torch.where(absent, n, arg)
            h = h + x.index_select(1, arg)
        return self.mlp(h).squeeze(-1)


class Critic(nn.Module):
    """Steps to go from a latent state to a goal (a set of facts), learned from optimal-plan lengths."""

    def __init__(self, vocab: Vocabulary, cfg: WorldModelConfig):
        super().__init__()
        self.goal = SymbolEmbedding(len(vocab.predicates), vocab.max_arity, cfg.dim)
        self.identity = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.kind = nn.Embedding(2, cfg.dim)
        self.body = _transformer(cfg.dim, cfg.heads, cfg.critic_layers, cfg.dropout)
        self.head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, 1))
        if cfg.critic_head not in ("sum", "global"):
            raise ValueError(f"critic_head must be 'sum' or 'global', got {cfg.critic_head!r}")
        self.sum = cfg.critic_head == "sum"
        self.local = cfg.critic_attention == "local"
        self.heads = cfg.heads
        if self.sum:
            self.object_head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, 1))
            # the per-object term starts at zero: a continued global-head checkpoint keeps its estimates at first
            nn.init.zeros_(self.object_head[1].weight)
            nn.init.zeros_(self.object_head[1].bias)

    def forward(self, s: torch.Tensor, goal_rows: torch.Tensor, goal_pad: torch.Tensor, ids: torch.Tensor):
        # s: (B, N+1, D); goal_rows: (B, G, 1+A); goal_pad: (B, G); ids: (B, N, D) -> (B,) steps
        n = ids.shape[1]
        tag = torch.cat([self.identity(ids), torch.zeros_like(s[:, n:])], dim=1)
        g = self.goal(goal_rows, ids) + self.kind.weight[1]
        x = torch.cat([s + tag + self.kind.weight[0], g], dim=1)
        pad = torch.cat([torch.zeros(s.shape[:2], dtype=torch.bool, device=s.device), goal_pad], dim=1)
        mask = None
        if self.local:
            inc = _incidence(goal_rows, n) & ~goal_pad.unsqueeze(-1)
            mask = _local_mask(inc, self.heads, action=False)
        x = self.body(x, mask=mask, src_key_padding_mask=pad)
        h = self.head(x[:, n]).squeeze(-1)
        if self.sum:
            h = h + self.object_head(x[:, :n]).squeeze(-1).sum(1)
        return nn.functional.softplus(h)


class RelationalCritic(nn.Module):
    """Steps to go by message passing over facts: the facts the fact probe reads off the latent state, and the goal
    facts. Each is a row (predicate, arguments); every round a row sends one message to each of its arguments and
    one to a global node, computed from its predicate (a state or a goal one) and its arguments' current vectors.
    An object sums what it receives, the global node averages. The rounds share their weights and there are as many
    as objects + 2, so that what holds at the bottom of a tower reaches its top however tall it is. The estimate is
    a sum of one term per object and a global term: it grows with the work to do on problems larger than any
    trained on. It reads the latent state only through the probe, so it sees what the world model says holds; it
    knows nothing of the objects but their relations (object identities are arbitrary)."""

    def __init__(self, vocab: Vocabulary, cfg: WorldModelConfig):
        super().__init__()
        d = cfg.critic_dim
        self.dim, self.arity = d, vocab.max_arity
        self.n_predicates = len(vocab.predicates)
        self.rounds = cfg.critic_rounds
        self.symbol = nn.Embedding(2 * self.n_predicates, d)  # state predicates, then goal predicates
        self.object0 = nn.Parameter(torch.randn(d) * 0.1)
        self.global0 = nn.Parameter(torch.randn(d) * 0.1)
        a = self.arity
        self.message = nn.Sequential(nn.Linear((a + 2) * d, 2 * d), nn.GELU(), nn.Linear(2 * d, (a + 1) * d))
        self.update_object = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.update_global = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm_object = nn.LayerNorm(d)
        self.norm_global = nn.LayerNorm(d)
        self.object_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.global_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    @staticmethod
    def state_rows(holds: torch.Tensor, fact_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) bool over the candidate facts (F, 1+A) -> the rows of those that hold (B, K, 1+A), padding (B, K)."""
        counts = holds.sum(1)
        k = max(1, int(counts.max().item()) if holds.numel() else 1)
        order = torch.argsort((~holds).to(torch.int8), dim=1, stable=True)[:, :k]
        rows = fact_rows[order]
        pad = torch.arange(k, device=holds.device).unsqueeze(0) >= counts.unsqueeze(1)
        return rows, pad

    def forward(
        self,
        holds: torch.Tensor,
        fact_rows: torch.Tensor,
        goal_rows: torch.Tensor,
        goal_pad: torch.Tensor,
        n: int,
        rounds: int | None = None,
    ) -> torch.Tensor:
        # holds: (B, F) bool, the candidate facts (F, 1+A) the probe says hold; goal_rows (B, G, 1+A); goal_pad
        # (B, G); n objects; rounds: None for the configured number (training draws more) -> (B,) steps
        state, state_pad = self.state_rows(holds, fact_rows)
        goal = goal_rows.clone()
        goal[..., 0] += self.n_predicates
        rows = torch.cat([state, goal], 1)
        pad = torch.cat([state_pad, goal_pad], 1)
        b, k, _ = rows.shape
        d, a = self.dim, self.arity
        # only the argument positions some row uses (facts have fewer than the world's widest action): a message
        # input or output of a position no row uses is zero, so it is left out of the products, not computed
        used = (rows[..., 1:] >= 0) & ~pad.unsqueeze(-1)
        fa = int(used.any(1).any(0).nonzero().max()) + 1 if bool(used.any()) else 1
        # an absent argument points at an extra object row that stays zero (gathers read zeros, scatters go there)
        slot = torch.where(used[..., :fa], rows[..., 1 : 1 + fa], n)  # (B, K, fa)
        live = (~pad).unsqueeze(-1).float()
        n_live = live.sum(1).clamp(min=1)
        # the message's first layer, split by its input's parts [symbol, argument 1..a, global]: the symbol's part
        # once, an argument's part once per object (then gathered per row), the global node's once per state
        first, act, second = self.message
        w = first.weight.split(d, 1)  # a + 2 blocks of (2d, d)
        w_args = torch.cat(w[1 : 1 + fa], 0)  # (fa*2d, d): every used position's block in one product
        w_out = torch.cat([second.weight[: fa * d], second.weight[a * d :]], 0)
        b_out = torch.cat([second.bias[: fa * d], second.bias[a * d :]], 0)
        from_symbol = nn.functional.linear(self.symbol(rows[..., 0]), w[0], first.bias)  # (B, K, 2d)
        to_row = [slot[..., i : i + 1].expand(-1, -1, 2 * d) for i in range(fa)]
        to_object = [slot[..., i : i + 1].expand(-1, -1, d) for i in range(fa)]
        h = self.object0.expand(b, n, d)
        g = self.global0.expand(b, d)
        zero = h.new_zeros(b, 1, d)
        for _ in range(rounds or self.rounds or n + 2):
            per_object = nn.functional.linear(torch.cat([h, zero], 1), w_args)  # (B, N+1, fa*2d), last row 0
            x = from_symbol + nn.functional.linear(g, w[a + 1]).unsqueeze(1)
            for i in range(fa):
                x = x + torch.gather(per_object[..., i * 2 * d : (i + 1) * 2 * d], 1, to_row[i])
            m = nn.functional.linear(act(x), w_out, b_out).view(b, k, fa + 1, d) * live.unsqueeze(-1)
            inbox = h.new_zeros(b, n + 1, d)
            for i in range(fa):
                inbox = inbox.scatter_add(1, to_object[i], m[:, :, i])
            h = self.norm_object(h + self.update_object(torch.cat([h, inbox[:, :n]], -1)))
            g = self.norm_global(
                g + self.update_global(torch.cat([g, m[:, :, fa].sum(1) / n_live, h.mean(1)], -1))
            )
        out = self.object_head(h).squeeze(-1).sum(1) + self.global_head(g).squeeze(-1)
        return nn.functional.softplus(out)


class WorldModel(nn.Module):
    def __init__(self, vocab: Vocabulary, cfg: WorldModelConfig | None = None):
        super().__init__()
        self.vocab = vocab
        self.cfg = cfg or WorldModelConfig()
        for name in ("attention", "critic_attention"):
            if getattr(self.cfg, name) not in ATTENTION:
                raise ValueError(
                    f"{name} must be one of {', '.join(ATTENTION)}, got {getattr(self.cfg, name)!r}"
                )
        d = self.cfg.dim
        self.identities = nn.Embedding(self.cfg.identity_slots, d)
        self.encoder = Encoder(vocab, self.cfg)
        self.predictor = Predictor(vocab, self.cfg)
        self.fact_probe = Readout(len(vocab.predicates), vocab.max_arity, d)
        self.applicability = Readout(len(vocab.actions), vocab.max_arity, d)
        if self.cfg.critic_kind not in CRITICS:
            raise ValueError(f"critic_kind must be one of {', '.join(CRITICS)}, got {self.cfg.critic_kind!r}")
        self.critic = RelationalCritic(vocab, self.cfg) if self.relational else Critic(vocab, self.cfg)

    @property
    def relational(self) -> bool:
        return self.cfg.critic_kind == "relational"

    def steps_to_go(
        self,
        s: torch.Tensor,
        goal_rows: torch.Tensor,
        goal_pad: torch.Tensor,
        ids: torch.Tensor,
        fact_rows: torch.Tensor,
        fact_probs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The critic's steps to go from latent states s (B, N+1, D) to the goal. The relational critic reads the
        facts that hold through the probe over the candidate facts `fact_rows` (F, 1+A), or from `fact_probs`
        (B, F) when the caller has them (an ensemble's averaged probabilities)."""
        n = ids.shape[1]
        if not self.relational:
            return self.critic(s, goal_rows, goal_pad, ids)
        if fact_probs is None:
            with torch.no_grad():
                holds = self.fact_probe(s, fact_rows) > 0
        else:
            holds = fact_probs > 0.5
        return self.critic(holds, fact_rows, goal_rows, goal_pad, n)

    def object_ids(self, slots: torch.Tensor) -> torch.Tensor:
        # slots: (B, N) distinct identity slots per problem -> (B, N, D)
        return self.identities(slots)

    def encode(self, fact_rows, fact_pad, ids):
        return self.encoder(fact_rows, fact_pad, ids)

    def predict(self, s, action_rows, ids):
        return self.predictor(s, action_rows, ids)

    def config_dict(self) -> dict:
        return {"vocab": self.vocab.to_dict(), "model": asdict(self.cfg)}

    @classmethod
    def from_config_dict(cls, d: dict) -> WorldModel:
        # a checkpoint states every field; these are what older checkpoints that omit one were made with
        older = {
            "critic_head": "global",
            "attention": "full",
            "critic_attention": "full",
            "critic_kind": "attention",
        }
        model = {**older, **d["model"]}
        return cls(Vocabulary.from_dict(d["vocab"]), WorldModelConfig(**model))
