"""Training the world model: generate trajectories with the simulator, learn the JEPA in latent space (teacher-forced
and multi-step rollout terms against an EMA target encoder, SIGReg against collapse), and the readouts (fact probe,
applicability, critic) on encoded and predicted latents. A relational critic learns instead from exact steps-to-go of
every state of small enumerated problems (`planner.values`). Shows progress, validates periodically, writes a
checkpoint and a JSON training record."""

from __future__ import annotations

import copy
import json
import math
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from planner.data import Batch, TrajectorySampler, collate
from planner.encoding import Vocabulary
from planner.jepa import WorldModel, WorldModelConfig
from planner.latent import fact_batch
from planner.losses import prediction_loss, regulariser


@dataclass
class TrainConfig:
    objects: tuple[int, int] = (3, 5)  # inclusive range of object counts to train on
    steps: int = 4000
    minutes: float = 25.0  # wall-clock budget; training stops at whichever comes first
    batch_size: int = 64
    rollout: int = 4  # K: steps per trajectory, rolled out autoregressively
    lr: float = 1e-3
    # the cosine decay runs over "steps" (cfg.steps) or over the "budget": whichever of cfg.steps and cfg.minutes
    # runs out first (a run stopped by its minutes then ends annealed, not at the peak rate)
    lr_schedule: str = "steps"
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
    optimal_fraction: float = 0.5
    # the share of problems whose goal is the whole target arrangement (long plans: steps-to-go past a handful)
    full_goal_fraction: float = 0.0
    # the largest object count whose trajectories follow optimal plans (the oracle's breadth-first search labels the
    # critic); larger problems give random walks only (dynamics, probe, applicability): they teach the encoder and
    # predictor sizes the oracle cannot label
    oracle_objects: int = 7
    validate_every: int = 250  # 0: no validation at all (not even at the end)
    validation_size: int = 128
    seed: int = 0
    threads: int = 0  # 0: torch's default
    # the parts to train (names from PARTS); empty: all of them. Continuing a checkpoint with only the read-outs
    # (probe, applicability, critic) leaves its latents, and so a decoder projector trained on them, as they are
    train_only: tuple[str, ...] = ()
    # the critic's attention ("full" | "local"): a new model takes it; a continued one switches to it (same weights,
    # another mask: train the critic after); "" leaves model.critic_attention, or the continued checkpoint's own
    critic_attention: str = ""
    # the critic's kind ("attention" | "relational"): a new model takes it; a continued one gets a fresh critic of
    # that kind (train it: train_only critic); "" keeps model.critic_kind, or the continued checkpoint's own
    critic_kind: str = ""
    # the relational critic's data: problems of these object counts, whose whole state spaces are enumerated (at
    # most value_max_states states each) to label every state with its exact steps to go
    value_objects: tuple[int, int] = (3, 6)
    value_batch: int = 128
    value_draws: int = 3  # identity draws whose probe readings are averaged (the planner averages 5)
    value_extra_rounds: int = 8  # the relational critic trains with objects + 2 + U(0..this) rounds
    value_max_states: int = 100_000
    # which states of a trajectory the online encoder encodes: "all" (the default checkpoints) or "first" (the
    # *.30min ones): the first state only; the later states' latents (the teacher-forced inputs and the read-outs'
    # inputs) come from the target encoder, as V-JEPA 2-AC's predictor reads frozen encoder features (model
    # compute of a step of 64 on 2 cores: 0.73 -> 0.41 s)
    online_states: str = "all"
    # random steps (0..this) a random walk takes before its trajectory starts: its first state, the one the online
    # encoder always sees, is then any reachable state (with online_states "first" an encoder that only ever saw
    # generated initial states, hand empty, mis-encoded the others: half of its one-step predictions from re-encoded
    # states were wrong, and the search re-encodes every state it reaches)
    walk_start: int = 0
    model: WorldModelConfig = field(default_factory=WorldModelConfig)


LR_SCHEDULES = ("steps", "budget")  # TrainConfig.lr_schedule
ONLINE_STATES = ("all", "first")  # TrainConfig.online_states

# trainable parts of the world model: option name -> WorldModel attribute
PARTS = {
    "identities": "identities",
    "encoder": "encoder",
    "predictor": "predictor",
    "probe": "fact_probe",
    "applicability": "applicability",
    "critic": "critic",
}
DYNAMICS = ("identities", "encoder", "predictor")  # the parts the latents depend on


def trainable_parts(cfg: TrainConfig, continuing: bool) -> set[str]:
    """The parts `cfg.train_only` names (all when empty); a clear error for an unknown name, or for training only
    some parts of a fresh model (the others would stay random)."""
    unknown = sorted(set(cfg.train_only) - PARTS.keys())
    if unknown:
        raise ValueError(f"unknown part(s) to train: {', '.join(unknown)} (known: {', '.join(PARTS)})")
    if cfg.train_only and not continuing:
        raise ValueError("training only some parts needs a checkpoint to continue from (--init-from)")
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
    """A one-line progress display on stderr (a bar when it is a terminal, periodic lines otherwise)."""

    def __init__(self, total: int, every: int = 50):
        self.total, self.every, self.t0 = total, every, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, step: int, stats: dict) -> None:
        if not self.tty and step % self.every and step != self.total:
            return
        el = time.perf_counter() - self.t0
        frac = step / self.total
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        msg = f"[{bar}] {step}/{self.total} {el / 60:.1f} min  loss {stats['loss']:.3f}"
        if "state_exact_encoded" in stats:
            msg += f"  exact(enc) {stats['state_exact_encoded']:.2f}"
        if "value_mae" in stats:
            msg += f"  critic error {stats['value_mae']:.2f} steps"
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
    cfg: TrainConfig,
    out: Path,
    seed_problems=None,
    validate_fn=None,
    command: str = "",
    log=print,
    init_from: Path | None = None,
) -> dict:
    """Trains, validates every `validate_every` steps (and at the end), writes `out` (.pt) and `out`.json.
    `init_from` continues from an earlier checkpoint of the same domain (its record is kept as `continued_from`)."""
    if cfg.online_states not in ONLINE_STATES:
        raise ValueError(
            f"unknown online_states {cfg.online_states!r}: use one of {', '.join(ONLINE_STATES)}"
        )
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"unknown learning-rate schedule {cfg.lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}"
        )
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vocab = Vocabulary.from_domain(domain)
    previous = None
    if init_from is not None:
        model, previous = load_checkpoint(init_from)
        if model.vocab != vocab:
            raise CheckpointError(f"{init_from} was trained on another domain ({previous.get('domain')})")
        # a global-head checkpoint continued with the sum head gains the per-object term (starting at zero); any
        # other checkpoint keeps its own head (a sum head is never cut back: it would drop trained weights)
        if model.cfg.critic_head == "global" and cfg.model.critic_head == "sum":
            wider = WorldModel(vocab, replace(model.cfg, critic_head="sum"))
            missing, unexpected = wider.load_state_dict(model.state_dict(), strict=False)
            if unexpected or any(not k.startswith("critic.object_head.") for k in missing):
                raise CheckpointError(f"{init_from}: cannot change its critic head ({missing}, {unexpected})")
            model = wider
        if cfg.critic_kind and cfg.critic_kind != model.cfg.critic_kind:  # a fresh critic of the other kind
            other = WorldModel(vocab, replace(model.cfg, critic_kind=cfg.critic_kind))
            kept = {k: v for k, v in model.state_dict().items() if not k.startswith("critic.")}
            missing, unexpected = other.load_state_dict(kept, strict=False)
            if unexpected or any(not k.startswith("critic.") for k in missing):
                raise CheckpointError(f"{init_from}: cannot change its critic ({missing}, {unexpected})")
            model = other
        if cfg.critic_attention and cfg.critic_attention != model.cfg.critic_attention:
            switched = WorldModel(vocab, replace(model.cfg, critic_attention=cfg.critic_attention))
            switched.load_state_dict(model.state_dict())
            model = switched
        cfg.model = model.cfg
        model.train()
    else:
        if cfg.critic_attention:
            cfg.model = replace(cfg.model, critic_attention=cfg.critic_attention)
        if cfg.critic_kind:
            cfg.model = replace(cfg.model, critic_kind=cfg.critic_kind)
        model = WorldModel(vocab, cfg.model)
    parts = trainable_parts(cfg, continuing=init_from is not None)
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
    lo, hi = cfg.objects
    counts = sampler.object_counts(lo, hi)
    # a relational critic learns from exact steps-to-go of enumerated small problems; trained alone, it needs no
    # trajectories (nothing else learns)
    values = None
    if model.relational and "critic" in parts and cfg.critic_weight > 0:
        from planner.values import StateSpaceTooLarge, ValueSampler

        values = ValueSampler(
            domain, sampler.symbols, sampler.problem, random.Random(cfg.seed + 1), cfg.value_max_states
        )
        value_counts = sampler.object_counts(*cfg.value_objects)
    trajectories = parts != {"critic"} or values is None
    history, validations = [], []
    t0 = time.perf_counter()
    progress = Progress(cfg.steps)
    step = 0
    stats: dict = {}
    for step in range(1, cfg.steps + 1):
        lr = learning_rate(cfg, step, (time.perf_counter() - t0) / 60)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        loss, stats = torch.zeros(()), {}
        if trajectories:
            n = random.Random(cfg.seed * 100003 + step).choice(counts)
            frac = cfg.optimal_fraction if n <= cfg.oracle_objects else 0.0
            trajs = [sampler.sample(n, cfg.rollout, frac) for _ in range(cfg.batch_size)]
            batch = collate(trajs, sampler.positional(n))
            loss, stats = batch_losses(
                model, target, batch, _slots(cfg.batch_size, n, cfg.model.identity_slots, gen), cfg, reg
            )
        if values is not None:
            n = random.Random(cfg.seed * 100019 + step).choice(value_counts)
            try:
                samples = [values.sample(n) for _ in range(cfg.value_batch)]
            except StateSpaceTooLarge:
                raise StateSpaceTooLarge(
                    f"a generated {n}-object problem has more than {cfg.value_max_states} reachable states: "
                    "give the relational critic smaller problems (--value-objects)"
                ) from None
            slots = torch.stack(
                [_slots(cfg.value_batch, n, cfg.model.identity_slots, gen) for _ in range(cfg.value_draws)], 1
            )
            extra = random.Random(cfg.seed * 100043 + step).randint(0, cfg.value_extra_rounds)
            rounds = None if model.cfg.critic_rounds else n + 2 + extra
            l_value, vstats = value_losses(model, samples, sampler.positional(n), slots, rounds)
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
        out_of_time = (time.perf_counter() - t0) / 60 > cfg.minutes
        if (
            validate_fn
            and cfg.validate_every > 0
            and (step % cfg.validate_every == 0 or step == cfg.steps or out_of_time)
        ):
            model.eval()
            v = validate_fn(model)
            v["step"] = step
            v["minutes"] = round((time.perf_counter() - t0) / 60, 2)
            validations.append(v)
            log(f"\nvalidation at step {step}: " + ", ".join(f"{k} {val}" for k, val in v.items()))
        if out_of_time:
            log(f"\nstopping at step {step}: the {cfg.minutes} min budget is spent")
            break
    progress.close()
    minutes = (time.perf_counter() - t0) / 60
    record = {
        "kind": "ami-agent world model",
        "domain": domain.name,
        "domain_file": str(domain.source),
        "trained_objects": list(cfg.objects),
        "steps_done": step,
        "minutes": round(minutes, 2),
        "config": asdict(cfg),
        "final_train_stats": {k: round(v, 5) for k, v in stats.items()},
        "validations": validations,
        "command": command,
        "machine": {
            "cpus": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": str(torch.__version__),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if previous is not None:
        record["continued_from"] = previous
        record["minutes_total"] = round(
            minutes + previous.get("minutes_total", previous.get("minutes", 0)), 2
        )
        record["steps_total"] = step + previous.get("steps_total", previous.get("steps_done", 0))
    save_checkpoint(model, out, record)
    Path(str(out) + ".history.json").write_text(json.dumps(history))
    return record


def save_checkpoint(model: WorldModel, out: Path, record: dict) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"config": model.config_dict(), "state_dict": state, "record": record}, out)
    record = dict(record, checkpoint_bytes=out.stat().st_size)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of another kind: says which file and what to do."""


def load_checkpoint(path: Path) -> tuple[WorldModel, dict]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint. Train one with `ami-agent train world-model`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = WorldModel.from_config_dict(blob["config"])
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        )
    except Exception as e:  # a file of another kind, a truncated file, an incompatible version
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(
            f"{path}: not a readable world-model checkpoint ({type(e).__name__}: {first}). "
            "Retrain it with `ami-agent train world-model`"
        ) from None
    model.eval()
    return model, blob.get("record", {})
