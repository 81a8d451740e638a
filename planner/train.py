"""Training the world model: generate trajectories with the simulator, learn the JEPA in latent space (teacher-forced
and multi-step rollout terms against an EMA target encoder, SIGReg against collapse), and the readouts (fact probe,
applicability, critic) on encoded and predicted latents. The relational critic learns from exact steps-to-go of
every state of small enumerated problems (`planner.values`).

A recipe is a model configuration and stages run in order on one model: `Recipe()` is the recipe that made
`checkpoints/blocksworld-4ops.pt` (dynamics, then the critic, then the read-outs on larger problems); a YAML file
(`recipes/`) holds only what differs from it. Each stage shows progress and ends with a checkpoint, so a stopped
run keeps the stages it finished.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from planner.checkpoint import load_checkpoint, save_checkpoint
from planner.data import Batch, TrajectorySampler, collate
from planner.encoding import Vocabulary
from planner.jepa import ATTENTION, CRITICS, WorldModel, WorldModelConfig
from planner.latent import fact_batch
from planner.losses import prediction_loss, regulariser
from planner.search import SearchConfig
from planner.values import StateSpaceTooLarge, ValueSampler
from planner.worlds.spec import parse_counts


@dataclass
class TrainConfig:
    """One stage of a recipe. The defaults are what the default recipe's stages share."""

    name: str = "all"
    minutes: float = 17.0  # wall-clock budget; the stage stops at whichever of minutes and steps comes first
    steps: int = 100_000
    objects: tuple[int, int] = (3, 5)  # inclusive range of object counts to train on
    batch_size: int = 64
    rollout: int = 4  # K: steps per trajectory, rolled out autoregressively
    lr: float = 1e-3
    # the cosine decay runs over "budget" (whichever of steps and minutes runs out first: a stage its minutes stop
    # ends annealed, not at the peak rate) or over "steps" alone
    lr_schedule: str = "budget"
    weight_decay: float = 0.01
    warmup: int = 100
    ema: float = 0.99
    regulariser: str = "sigreg"  # sigreg | vicreg | none
    regulariser_weight: float = 0.05
    regulariser_tokens: int = 512
    rollout_weight: float = 1.0
    probe_weight: float = 1.0
    applicability_weight: float = 0.5
    critic_weight: float = 0.1
    optimal_fraction: float = 0.5  # trajectories that follow an optimal plan (they label an attention critic)
    # the share of problems whose goal is the whole target arrangement (long plans: steps-to-go past a handful)
    full_goal_fraction: float = 0.0
    # the largest object count whose trajectories follow optimal plans (the oracle's breadth-first search labels an
    # attention critic); larger problems give random walks only
    oracle_objects: int = 7
    seed: int = 0
    threads: int = 0  # 0: torch's default
    # the parts to train (names from PARTS); empty: all of them. Training only the read-outs (probe,
    # applicability, critic) leaves the latents, and a decoder projector trained on them, as they are
    train_only: tuple[str, ...] = ()
    # the relational critic's data: problems of these object counts, whose whole state spaces are enumerated (at
    # most value_max_states states each) to label every state with its exact steps to go
    value_objects: tuple[int, int] = (3, 6)
    value_batch: int = 128
    value_draws: int = 3  # identity draws whose probe readings are averaged (the planner averages 5)
    value_extra_rounds: int = 8  # the relational critic trains with objects + 2 + U(0..this) rounds
    value_max_states: int = 100_000
    value_goals: int = 8  # goals per enumerated problem (each labels every state of its state space)
    # a spec world's group counts for the critic's problems ("package=1-3"): small enough state spaces to
    # enumerate with the structure of large problems (several cities, long hauls)
    value_counts: tuple[str, ...] = ()
    # which states of a trajectory the online encoder encodes: "all", or "first" (the later states' latents, the
    # teacher-forced inputs and the read-outs' inputs, come from the target encoder, as V-JEPA 2-AC's predictor
    # reads frozen encoder features: model compute of a step of 64 on 2 cores 0.73 -> 0.41 s)
    online_states: str = "all"
    # random steps (0..this) a random walk takes before its trajectory starts, so its first state (the one the
    # online encoder always sees under online_states "first") can be any reachable state, not only a generated
    # initial one with the hand empty: the search re-encodes every state it reaches
    walk_start: int = 0


def default_stages() -> list[TrainConfig]:
    """The recipe of checkpoints/blocksworld-4ops.pt: 28.5 minutes on 2 CPU cores."""
    return [
        # encoder, predictor and read-outs on random walks from any reachable state (no critic yet)
        TrainConfig(
            "dynamics",
            minutes=17.0,
            lr=2e-3,
            critic_weight=0.0,
            optimal_fraction=0.0,
            oracle_objects=0,
            online_states="first",
            walk_start=6,
        ),
        # the relational critic alone, on exact steps-to-go of every state of 3-7 block problems
        TrainConfig("critic", minutes=8.0, train_only=("critic",), critic_weight=1.0, value_objects=(3, 7)),
        # the probe and applicability head on states of up to 15 objects (the latents stay as they are)
        TrainConfig(
            "readouts", minutes=3.5, objects=(3, 15), oracle_objects=0, train_only=("probe", "applicability")
        ),
    ]


@dataclass
class Recipe:
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    stages: list[TrainConfig] = field(default_factory=default_stages)
    # the world's search settings (fields of planner.search.SearchConfig that differ from its defaults): the
    # checkpoint's record carries them and `Planner.load` plans with them unless told otherwise
    search: dict = field(default_factory=dict)

    @property
    def minutes(self) -> float:
        return sum(s.minutes for s in self.stages)

    def scaled(self, minutes: float) -> Recipe:
        """The same stages sharing `minutes` in the recipe's proportions (a quick look, or a slower machine)."""
        k = minutes / self.minutes
        return replace(self, stages=[replace(s, minutes=round(s.minutes * k, 4)) for s in self.stages])

    def to_dict(self) -> dict:
        return {
            "model": asdict(self.model),
            "stages": [asdict(s) for s in self.stages],
            "search": dict(self.search),
        }

    @classmethod
    def load(cls, path: Path) -> Recipe:
        """A YAML recipe: `model:` (fields of WorldModelConfig), `stages:` (a list of fields of TrainConfig) and
        `search:` (fields of SearchConfig), each holding only what differs from the defaults; without `stages:` the
        default stages run."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise RecipeError(f"{path}: cannot read the recipe ({e})") from None
        if not isinstance(data, dict) or set(data) - {"model", "stages", "search"}:
            raise RecipeError(
                f"{path}: a recipe has `model:`, `stages:` and `search:` sections, got {sorted(data)}"
            )
        model = _build(WorldModelConfig, data.get("model") or {}, f"{path}: model")
        given = data.get("search") or {}
        try:
            built = _build(SearchConfig, given, f"{path}: search")
        except RecipeError:
            raise
        except ValueError as e:  # SearchConfig's own check: an unknown strategy or critic_goals
            raise RecipeError(f"{path}: search: {e}") from None
        search = {k: getattr(built, k) for k in given}
        stages = default_stages()
        if "stages" in data:
            if not isinstance(data["stages"], list) or not data["stages"]:
                raise RecipeError(f"{path}: `stages:` must be a list of stages")
            stages = [
                _build(TrainConfig, s or {}, f"{path}: stage {i + 1}") for i, s in enumerate(data["stages"])
            ]
        return cls(model, stages, search)


class RecipeError(ValueError):
    """A recipe file that cannot be used: which file, which field."""


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected field: value pairs, got {values!r}")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RecipeError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(known)})")
    default = cls()
    out = {}
    for k, v in values.items():
        d = getattr(default, k)
        try:
            if isinstance(d, tuple):
                kind = type(d[0]) if d else str
                out[k] = tuple(_cast(kind, x) for x in (v if isinstance(v, (list, tuple)) else [v]))
            else:
                out[k] = _cast(type(d), v)
        except (TypeError, ValueError):
            raise RecipeError(f"{where}: {k} must be a {type(d).__name__} like {d!r}, got {v!r}") from None
    return cls(**out)


def _cast(kind: type, v):
    """A YAML value as the field's type (an int written 6.0 is 6; a number is never a string, nor a bool)."""
    if kind is bool or isinstance(v, bool) or (kind is str) != isinstance(v, str):
        if not (kind is bool and isinstance(v, bool)):
            raise TypeError(v)
        return v
    if kind is int and not float(v).is_integer():
        raise ValueError(v)
    return kind(v)


LR_SCHEDULES = ("steps", "budget")  # TrainConfig.lr_schedule
ONLINE_STATES = ("all", "first")  # TrainConfig.online_states
REGULARISERS = ("sigreg", "vicreg", "none")  # TrainConfig.regulariser (planner.losses)

# trainable parts of the world model: name -> WorldModel attribute
PARTS = {
    "identities": "identities",
    "encoder": "encoder",
    "predictor": "predictor",
    "probe": "fact_probe",
    "applicability": "applicability",
    "critic": "critic",
}
DYNAMICS = ("identities", "encoder", "predictor")  # the parts the latents depend on


def check_recipe(recipe: Recipe) -> None:
    """A clear error for a recipe that cannot run: a model setting of an unknown kind, a stage with unknown
    settings or parts, or a first stage that trains only some parts (the others would stay random)."""
    m = recipe.model
    for name, value, known in (
        ("attention", m.attention, ATTENTION),
        ("critic_attention", m.critic_attention, ATTENTION),
        ("critic_kind", m.critic_kind, CRITICS),
        ("critic_head", m.critic_head, ("sum", "global")),
    ):
        if value not in known:
            raise RecipeError(f"model: {name} must be one of {', '.join(known)}, got {value!r}")
    check_stages(recipe.stages)


def check_stages(stages: list[TrainConfig]) -> None:
    if not stages:
        raise RecipeError("a recipe needs at least one stage")
    for i, s in enumerate(stages):
        where = f"stage {i + 1} ({s.name})"
        unknown = sorted(set(s.train_only) - PARTS.keys())
        if unknown:
            raise RecipeError(
                f"{where}: unknown part(s) to train: {', '.join(unknown)} (known: {', '.join(PARTS)})"
            )
        if s.online_states not in ONLINE_STATES:
            raise RecipeError(f"{where}: online_states must be one of {', '.join(ONLINE_STATES)}")
        if s.lr_schedule not in LR_SCHEDULES:
            raise RecipeError(f"{where}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        if s.regulariser not in REGULARISERS:
            raise RecipeError(f"{where}: regulariser must be one of {', '.join(REGULARISERS)}")
        if not 1 <= s.objects[0] <= s.objects[-1]:
            raise RecipeError(f"{where}: objects must be LO-HI with 1 <= LO <= HI, got {s.objects}")
        if not (0 <= s.optimal_fraction <= 1 and 0 <= s.full_goal_fraction <= 1):
            raise RecipeError(f"{where}: optimal_fraction and full_goal_fraction are between 0 and 1")
        if s.minutes <= 0 or s.steps < 1:
            raise RecipeError(f"{where}: minutes and steps must be positive")
    if stages[0].train_only:
        raise RecipeError("the first stage trains a new model: it must train every part (no train_only)")


def trainable_parts(cfg: TrainConfig) -> set[str]:
    return set(cfg.train_only) or set(PARTS)


def _slots(b: int, n: int, pool: int, gen: torch.Generator) -> torch.Tensor:
    return torch.stack([torch.randperm(pool, generator=gen)[:n] for _ in range(b)])


def _readout_loss(readout, enc_flat, roll_flat, rows, targets):
    """BCE of a readout on encoded latents (all K+1 states) and on rolled-out latents (states 1..K)."""
    # targets: (B, K+1, S) multi-hot; enc_flat: (B*(K+1), N+1, D); roll_flat: (B*K, N+1, D)
    on_enc = readout(enc_flat, rows)
    on_roll = readout(roll_flat, rows)
    loss = F.binary_cross_entropy_with_logits(
        on_enc, targets.flatten(0, 1)
    ) + F.binary_cross_entropy_with_logits(on_roll, targets[:, 1:].flatten(0, 1))
    return loss, on_enc, on_roll


def batch_losses(
    model: WorldModel, target: torch.nn.Module, batch: Batch, slots: torch.Tensor, cfg: TrainConfig, reg=None
) -> tuple[torch.Tensor, dict]:
    b, k1, fmax, a1 = batch.fact_rows.shape
    k = k1 - 1
    sym = batch.symbols
    n = len(sym.objects)
    # with identities, encoder and predictor frozen the latents are constants: no graph is kept for them
    dynamics = any(p.requires_grad for part in DYNAMICS for p in getattr(model, PARTS[part]).parameters())
    with torch.set_grad_enabled(dynamics and torch.is_grad_enabled()):
        ids = model.object_ids(slots)  # (B, N, D)
        d = ids.shape[-1]
        ids_s = ids.repeat_interleave(k1, 0)
        rows = batch.fact_rows.view(b * k1, fmax, a1)
        pad = batch.fact_pad.view(b * k1, fmax)
        with torch.no_grad():
            zt = target(rows, pad, ids_s).view(b, k1, n + 1, d)
        if cfg.online_states == "first":
            z_online = model.encode(batch.fact_rows[:, 0], batch.fact_pad[:, 0], ids)  # (B, N+1, D)
            z = torch.cat([z_online.unsqueeze(1), zt[:, 1:]], 1)
        else:
            z = model.encode(rows, pad, ids_s).view(b, k1, n + 1, d)
            z_online = z
        pred1 = model.predict(
            z[:, :-1].reshape(b * k, n + 1, d), batch.action_rows.view(b * k, a1), ids.repeat_interleave(k, 0)
        ).view(b, k, n + 1, d)
        s, roll = z[:, 0], []
        for t in range(k):
            s = model.predict(s, batch.action_rows[:, t], ids)
            roll.append(s)
        roll = torch.stack(roll, 1)
        l_tf = prediction_loss(pred1, zt[:, 1:])
        l_roll = prediction_loss(roll, zt[:, 1:])
        flat = z_online.reshape(-1, d)
        if flat.shape[0] > cfg.regulariser_tokens:  # a random subset keeps SIGReg's cost bounded
            flat = flat[torch.randperm(flat.shape[0])[: cfg.regulariser_tokens]]
        l_reg = (reg or regulariser(cfg.regulariser))(flat)
    enc_flat = z.reshape(b * k1, n + 1, d)
    roll_flat = roll.reshape(b * k, n + 1, d)
    l_probe, fl_enc, fl_roll = _readout_loss(
        model.fact_probe, enc_flat, roll_flat, sym.fact_rows, batch.state_targets
    )
    l_app, _, al_roll = _readout_loss(
        model.applicability, enc_flat, roll_flat, sym.action_rows, batch.applicable
    )
    tgt, app = batch.state_targets, batch.applicable
    known = batch.to_go.view(-1) >= 0
    if known.any() and not model.relational:  # (a relational critic learns from `value_losses`)
        steps = model.critic(
            enc_flat[known],
            batch.goal_rows.repeat_interleave(k1, 0)[known],
            batch.goal_pad.repeat_interleave(k1, 0)[known],
            ids_s[known],
        )
        l_critic = F.smooth_l1_loss(steps, batch.to_go.view(-1)[known])
    else:
        l_critic = z.new_zeros(())
    loss = (
        l_tf
        + cfg.rollout_weight * l_roll
        + cfg.regulariser_weight * l_reg
        + cfg.probe_weight * l_probe
        + cfg.applicability_weight * l_app
        + cfg.critic_weight * l_critic
    )
    with torch.no_grad():
        exact_enc = ((fl_enc > 0) == (tgt.view(b * k1, -1) > 0.5)).all(-1).float().mean()
        exact_roll = ((fl_roll.view(b, k, -1)[:, -1] > 0) == (tgt[:, -1] > 0.5)).all(-1).float().mean()
        app_exact = ((al_roll > 0) == (app[:, 1:].reshape(b * k, -1) > 0.5)).all(-1).float().mean()
        latent_std = z_online.reshape(-1, d).std(0).mean()
    stats = {
        "loss": loss.item(),
        "jepa_1step": l_tf.item(),
        "jepa_rollout": l_roll.item(),
        "reg": l_reg.item(),
        "probe": l_probe.item(),
        "applicability": l_app.item(),
        "critic": l_critic.item(),
        "state_exact_encoded": exact_enc.item(),
        f"state_exact_{k}step": exact_roll.item(),
        "applicable_exact_rollout": app_exact.item(),
        "latent_std": latent_std.item(),
    }
    return loss, stats


def value_losses(
    model: WorldModel, samples, symbols, slots: torch.Tensor, rounds: int | None = None
) -> tuple[torch.Tensor, dict]:
    """The relational critic's loss on (state, goal, exact steps-to-go) samples of one object count: the states are
    encoded under E identity draws (`slots` (B, E, N)), the probe reads which facts hold (the draws' probabilities
    averaged, as the planner's ensemble reads them), the critic estimates from those (in `rounds` rounds of message
    passing: more than the planner runs on problems this small teaches it estimates that hold still when the rounds
    go on, as they do on large problems)."""
    n = len(symbols.objects)
    b, e = slots.shape[:2]
    rows, pad = fact_batch(symbols, [v.state for v in samples])
    goals, goal_pad = fact_batch(symbols, [v.goal for v in samples])
    target = torch.tensor([float(v.to_go) for v in samples])
    with torch.no_grad():
        ids = model.object_ids(slots.flatten(0, 1))
        z = model.encode(rows.repeat_interleave(e, 0), pad.repeat_interleave(e, 0), ids)
        probs = torch.sigmoid(model.fact_probe(z, symbols.fact_rows)).view(b, e, -1).mean(1)
        truth = torch.zeros_like(probs, dtype=torch.bool)
        for i, v in enumerate(samples):
            truth[i, v.state] = True
    holds = probs > 0.5
    est = model.critic(holds, symbols.fact_rows, goals, goal_pad, n, rounds)
    loss = F.smooth_l1_loss(est, target)
    with torch.no_grad():
        err = (est - target).abs()
        stats = {
            "loss": loss.item(),
            "value": loss.item(),
            "value_mae": err.mean().item(),
            "value_within_half": (err < 0.5).float().mean().item(),  # rounds to the exact steps to go
            "value_probe_exact": (holds == truth).all(-1).float().mean().item(),
        }
    return loss, stats


class Progress:
    """One line of progress on stderr: a bar over the stage's budget (minutes or steps, whichever runs out first)
    when stderr is a terminal, a line every `every` seconds otherwise."""

    def __init__(self, label: str, cfg: TrainConfig, every: float = 30.0):
        self.label, self.cfg, self.every = label, cfg, every
        self.t0 = self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, step: int, stats: dict, force: bool = False) -> None:
        now = time.perf_counter()
        if not (self.tty or force or now - self.last >= self.every):
            return
        self.last = now
        el = (now - self.t0) / 60
        frac = min(1.0, max(step / self.cfg.steps, el / self.cfg.minutes))
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        msg = f"{self.label} [{bar}] {el:.1f}/{self.cfg.minutes:g} min, step {step}, loss {stats.get('loss', 0):.3f}"
        if "state_exact_encoded" in stats:
            msg += f", exact(enc) {stats['state_exact_encoded']:.2f}"
        if "value_mae" in stats:
            msg += f", critic error {stats['value_mae']:.2f} steps"
        print(("\r" if self.tty else "") + msg, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self):
        if self.tty:
            print(file=sys.stderr)


def learning_rate(cfg: TrainConfig, step: int, minutes: float) -> float:
    """Linear warmup, then cosine decay to 0 over the schedule's span (`TrainConfig.lr_schedule`); `minutes`:
    the time trained so far."""
    done = step / cfg.steps
    if cfg.lr_schedule == "budget":
        done = max(done, minutes / cfg.minutes)
    return cfg.lr * min(1.0, step / max(1, cfg.warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def train_world_model(
    domain,
    recipe: Recipe,
    out: Path,
    seed_problems=None,
    command: str = "",
    log=print,
    recipe_file: str = "",
    resume: tuple[Path, str] | None = None,
) -> dict:
    """Runs the recipe's stages in order on one new model and writes `out` (.pt), `out`.json (the record) and
    `out`.history.json (training statistics every 10 steps). Each stage ends with a checkpoint and the next one
    starts from it, as separate runs would. `recipe_file`: the YAML file the recipe came from ("" for the default),
    for the record. `resume` (a checkpoint, a stage's name): run the recipe from that stage on, on the checkpoint's
    weights with the parts the later stages learn set back to a new model's (`resumed_model`)."""
    check_recipe(recipe)
    out = Path(out)
    vocab = Vocabulary.from_domain(domain)
    torch.manual_seed(recipe.stages[0].seed)
    model = WorldModel(vocab, recipe.model)
    done: list[dict] = []
    history: list[dict] = []
    first, resumed = 0, None
    if resume is not None:
        model, first, done, history, resumed = resumed_model(model, recipe, *resume)
    for i, stage in enumerate(recipe.stages):
        if i < first:
            continue
        if i > first:
            model, _ = load_checkpoint(
                out
            )  # the saved (fp16) weights, as a run continuing the file would read
        label = f"stage {i + 1}/{len(recipe.stages)} ({stage.name})"
        log(f"{label}: training {', '.join(sorted(trainable_parts(stage)))} for {stage.minutes:.1f} min")
        summary, rows = train_stage(model, domain, vocab, stage, seed_problems, label, log)
        done.append(summary)
        history += [{"stage": stage.name, **r} for r in rows]
        record = {
            "kind": "ami-agent world model",
            "domain": domain.name,
            "domain_file": str(domain.source),
            "recipe": recipe_file or "default",
            "config": recipe.to_dict(),
            "trained_objects": [
                min(s.objects[0] for s in recipe.stages),
                max(s.objects[-1] for s in recipe.stages),
            ],
            "stages": done,
            "steps_total": sum(s["steps_done"] for s in done),
            "minutes_total": round(sum(s["minutes"] for s in done), 2),
            "complete": i == len(recipe.stages) - 1,
            "command": command,
            "machine": machine(),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        if resumed:
            record["resumed"] = resumed
        save_checkpoint(model, out, record)
        Path(str(out) + ".history.json").write_text(json.dumps(history))
    return record


def learned_parts(cfg: TrainConfig, model: WorldModel) -> set[str]:
    """The parts whose weights a stage changes: those it trains, but the relational critic where the stage gives it
    no weight (it is then never run, so the optimiser leaves it as it was; an attention critic may be run and
    weighted 0, and weight decay then moves it)."""
    parts = trainable_parts(cfg)
    if cfg.critic_weight == 0 and model.relational:
        parts.discard("critic")
    return parts


def resumed_model(fresh: WorldModel, recipe: Recipe, base: Path, stage: str):
    """The model a run of `recipe` has when stage `stage` begins, from a checkpoint the recipe made: its weights,
    with the parts that stage and the later ones learn set back to `fresh`'s (the new model a run starts from,
    made under the recipe's seed). Exact when no earlier stage learns those parts, which is checked, as is that
    the checkpoint's model and earlier stages are the recipe's. -> (model, the stage's index, the earlier stages'
    summaries and history, what the record says of it)."""
    names = [s.name for s in recipe.stages]
    if stage not in names:
        raise RecipeError(f"no stage '{stage}' in the recipe (its stages: {', '.join(names)})")
    first = names.index(stage)
    model, rec = load_checkpoint(base)

    def plain(cls, given: dict):  # a record's settings with today's defaults for fields it predates
        return json.loads(json.dumps(asdict(cls(**given))))

    config = rec.get("config") or {}
    try:
        same = plain(WorldModelConfig, config["model"]) == plain(WorldModelConfig, asdict(recipe.model)) and [
            plain(TrainConfig, s) for s in config["stages"][:first]
        ] == [plain(TrainConfig, asdict(s)) for s in recipe.stages[:first]]
    except (KeyError, TypeError):  # no config, or a field since removed
        same = False
    if not same:
        raise RecipeError(
            f"{base}: its model or its stages before '{stage}' are not the recipe's; resume a checkpoint the "
            "recipe's earlier stages made, or run the whole recipe"
        )
    earlier = set().union(*(learned_parts(s, model) for s in recipe.stages[:first]))
    later = set().union(*(learned_parts(s, model) for s in recipe.stages[first:]))
    if earlier & later:
        raise RecipeError(
            f"stage '{stage}' or a later one learns {', '.join(sorted(earlier & later))}, which an earlier stage "
            "learned too: where it began is not in the checkpoint; run the whole recipe"
        )
    for part in later:  # as a run reads them at that stage: from its checkpoint's fp16 weights
        new = getattr(fresh, PARTS[part]).state_dict()
        getattr(model, PARTS[part]).load_state_dict(
            {k: v.half().float() if v.is_floating_point() else v for k, v in new.items()}
        )
    kept = set(names[:first])
    hist_file = Path(str(base) + ".history.json")
    history = json.loads(hist_file.read_text()) if hist_file.exists() else []
    resumed = {
        "from": str(base),
        "stages_kept": names[:first],
        "their_command": rec.get("command", ""),
        "their_machine": rec.get("machine", {}),
    }
    return model, first, rec["stages"][:first], [h for h in history if h.get("stage") in kept], resumed


def machine() -> dict:
    """What trained a checkpoint: the stages stop on minutes, so the steps, and the model, depend on it."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), ""
    )
    return {
        "cpus": torch.get_num_threads(),
        "cpu": name or platform.processor(),
        "avx512": "avx512f" in info,
        "native_bf16": "avx512_bf16" in info or "amx_bf16" in info,
        "platform": platform.platform(),
        "torch": str(torch.__version__),
    }


def train_stage(model: WorldModel, domain, vocab, cfg: TrainConfig, seed_problems, label: str, log=print):
    """One stage on `model` (in place) -> (its summary for the record, statistics every 10 steps)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model.train()
    parts = trainable_parts(cfg)
    for name, attr in PARTS.items():
        getattr(model, attr).requires_grad_(name in parts)
    trained = [p for p in model.parameters() if p.requires_grad]
    target = copy.deepcopy(model.encoder).requires_grad_(False)
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = TrajectorySampler(
        domain,
        vocab,
        seed_problems,
        random.Random(cfg.seed),
        full_goal_fraction=cfg.full_goal_fraction,
        walk_start=cfg.walk_start,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    reg = regulariser(cfg.regulariser)
    counts = sampler.object_counts(*cfg.objects)
    # a relational critic learns from exact steps-to-go of enumerated small problems; trained alone, it needs no
    # trajectories (nothing else learns)
    values = None
    if model.relational and "critic" in parts and cfg.critic_weight > 0:
        group_counts = parse_counts(cfg.value_counts) if cfg.value_counts else None
        values = ValueSampler(
            domain,
            sampler.symbols,
            sampler.problem,
            random.Random(cfg.seed + 1),
            cfg.value_max_states,
            goals_per_problem=cfg.value_goals,
            skeleton=(lambda n: sampler.skeleton(n, group_counts)) if sampler.has_skeletons else None,
        )
        value_counts = sampler.object_counts(*cfg.value_objects)
    trajectories = parts != {"critic"} or values is None
    history = []
    t0 = time.perf_counter()
    progress = Progress(label, cfg)
    step = 0
    stats: dict = {}
    for step in range(1, cfg.steps + 1):
        lr = learning_rate(cfg, step, (time.perf_counter() - t0) / 60)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, stats = torch.zeros(()), {}
        if trajectories:
            n = random.Random(cfg.seed * 100003 + step).choice(counts)
            frac = cfg.optimal_fraction if n <= cfg.oracle_objects else 0.0
            trajs, symbols = sampler.batch(n, cfg.batch_size, cfg.rollout, frac)
            batch = collate(trajs, symbols)
            loss, stats = batch_losses(
                model, target, batch, _slots(cfg.batch_size, n, model.cfg.identity_slots, gen), cfg, reg
            )
        if values is not None:
            n = random.Random(cfg.seed * 100019 + step).choice(value_counts)
            try:
                samples, value_symbols = values.batch(n, cfg.value_batch, sampler.positional)
            except StateSpaceTooLarge:
                raise StateSpaceTooLarge(
                    f"a generated {n}-object problem has more than {cfg.value_max_states} reachable states: "
                    "give the relational critic smaller problems (value_objects in the recipe)"
                ) from None
            slots = torch.stack(
                [_slots(cfg.value_batch, n, model.cfg.identity_slots, gen) for _ in range(cfg.value_draws)], 1
            )
            extra = random.Random(cfg.seed * 100043 + step).randint(0, cfg.value_extra_rounds)
            rounds = None if model.cfg.critic_rounds else n + 2 + extra
            l_value, vstats = value_losses(model, samples, value_symbols, slots, rounds)
            loss = loss + cfg.critic_weight * l_value
            stats = {**stats, **{k: v for k, v in vstats.items() if k != "loss"}, "loss": loss.item()}
        opt.zero_grad(set_to_none=True)
        # (a batch can hold no term for the parts trained: no optimal-plan labels for a critic trained alone, say)
        if loss.requires_grad:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            opt.step()
        with torch.no_grad():  # (a frozen encoder leaves its EMA copy equal to it)
            for pt, pm in zip(target.parameters(), model.encoder.parameters()):
                pt.mul_(cfg.ema).add_(pm.detach(), alpha=1 - cfg.ema)
        if step % 10 == 0:
            history.append({"step": step, **{k: round(v, 5) for k, v in stats.items()}})
        progress.update(step, stats)
        if (time.perf_counter() - t0) / 60 > cfg.minutes:
            break
    progress.update(step, stats, force=True)
    progress.close()
    model.eval()
    minutes = (time.perf_counter() - t0) / 60
    summary = {
        "name": cfg.name,
        "steps_done": step,
        "minutes": round(minutes, 2),
        "final_train_stats": {k: round(v, 5) for k, v in stats.items()},
    }
    return summary, history
