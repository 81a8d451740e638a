"""The actor: search over action sequences by rolling the learned predictor forward in latent space.

The search sees the world only through a `LatentWorld` (encode, step, read facts/applicability/steps-to-go) and the
energies; it imports nothing from the symbolic simulator. Compute follows difficulty: it stops as soon as the task
energy says the goal holds, and ends in `no_plan` with a reason when the budget is spent, when nothing is left to
expand, or when every continuation breaks a guardrail.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field, replace

import torch

from planner.energies import (
    CriticEnergy,
    Energy,
    FeasibilityEnergy,
    Guardrail,
    StepView,
    TaskEnergy,
)
from planner.latent import LatentWorld, applicable_of
from planner.memory import release_freed_memory
from planner.record import PlanRecord


@dataclass
class SearchConfig:
    beam_width: int = 64
    max_depth: int = 60
    max_expansions: int = 20_000
    time_limit: float = 30.0  # seconds
    applicable_threshold: float = 0.5  # candidate actions the model deems applicable
    snap: bool = True  # re-encode each predicted state from its decoded facts (keeps long rollouts on track)
    task_weight: float = 1.0
    critic_weight: float = 1.0
    feasibility_weight: float = 1.0
    depth_weight: float = 1.0
    # "beam": each round keeps the beam_width best children of the current beam. "best-first": every child stays on
    # an open list and each round expands the beam_width best open nodes, whatever their depth: the search backs up
    # out of a plateau of the critic instead of running dry (long plans)
    strategy: str = "beam"
    # how the critic reads a goal of several facts: "joint" (one estimate for the whole goal) or "each" (the sum of
    # its estimates for each fact alone, `LatentWorld.steps_to_go_each`: for a world whose goals name many
    # independent facts, such as logistics' packages)
    critic_goals: str = "joint"
    # how the search reads facts off a state: an ensemble of identity draws combines its read-outs as the mean of
    # the draws' "probability" or the mean of their "logit" (one unsure draw then does not outvote surer ones), and
    # a fact holds when the combined read-out is above `fact_threshold` (`EnsembleWorld`)
    ensemble_readout: str = "probability"
    fact_threshold: float = 0.5
    # when a search for the whole goal spends its share of the budget (`AGENDA_AFTER`), pursue the goal's facts one
    # at a time (`agenda_search`): the one the critic puts nearest first, each search keeping the facts already
    # reached. For a world whose goal facts never stand in each other's way (logistics' packages), where one
    # search for a goal of many facts is led by a sum of as many estimates, whose errors add up
    goal_agenda: bool = False
    # best-first: children that make some fact true for the first time among the states of the same estimate
    # (the critic's steps to go, rounded) go before all others (best-first width search): the search then crosses a
    # plateau of the critic by trying what is new rather than every combination of moves that change nothing it reads
    novelty: bool = False
    # best-first: a second open list holds the children whose action names an object of an open goal fact, or an
    # object that shares a changing fact with one in the parent's state (the truck a goal's package is in, the place
    # it is at: preferred actions); picks alternate between the two lists, the first from the preferred one, so a step
    # the critic reads as no nearer (loading the package) is tried before every combination of moves it reads nearer
    preferred: bool = False
    # a plan found is made shorter before it is checked (`planner.shorten`): its steps move as early as they can
    # run and the steps no longer needed drop out, by the model's reading of the plan's states; for a world where
    # goal facts pursued one at a time repeat each other's trips (logistics)
    shorten: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.critic_goals not in CRITIC_GOALS:
            raise ValueError(
                f"critic_goals must be one of {', '.join(CRITIC_GOALS)}, got {self.critic_goals!r}"
            )
        if self.ensemble_readout not in READOUTS:
            raise ValueError(
                f"ensemble_readout must be one of {', '.join(READOUTS)}, got {self.ensemble_readout!r}"
            )
        if not 0.0 < self.fact_threshold < 1.0:
            raise ValueError(f"fact_threshold must be between 0 and 1, got {self.fact_threshold!r}")


STRATEGIES = ("beam", "best-first")
# goal_agenda: the share of the budget the search for the whole goal gets first (its plans are the shorter ones: one
# move serves several facts), before the goal's facts are taken one at a time
AGENDA_AFTER = 1 / 3
# best-first with novelty: added to the score of a node that makes no fact true for the first time
NOT_NOVEL = 1e6
CRITIC_GOALS = ("joint", "each")
READOUTS = ("probability", "logit")


@dataclass
class PlanResult:
    status: str  # solved | no_plan
    actions: list[tuple[str, ...]] = field(default_factory=list)  # (name, arg, ...)
    reason: str = ""
    # (T+1, N+1, D) for one identity draw, (T+1, E, N+1, D) for an ensemble: what the decoder conditions on
    latent_trajectory: torch.Tensor | None = None
    step_energies: list[dict[str, float]] = field(default_factory=list)  # per step, each term
    energies: dict[str, float] = field(default_factory=dict)  # totals over the plan
    expansions: int = 0
    generated: int = 0
    seconds: float = 0.0
    predicted_facts: list[frozenset] = field(default_factory=list)  # decoded states along the plan
    verified_by: int = 0  # how many other identity draws of the model confirmed the plan
    escalated: bool = False  # the beam spent its share of the budget; best-first went on (planner.api)
    # the search stopped because its time or expansions ran out (not because nothing was left to search): the
    # planner escalates, or stops asking other identity draws, on this flag
    budget_spent: bool = False
    spent: str = ""  # with budget_spent: which ran out first, "time" or "expansions"
    # with escalated: what the beam ran out of ("time" depends on the machine's load, "expansions" does not)
    escalated_by: str = ""
    identities: torch.Tensor | None = (
        None  # (E, N, D) the objects' identity vectors of the draws that planned
    )
    # the identity draws (seeds) whose ensemble found the plan: `Planner.latent_plan` recomputes the trajectory
    seeds: list[int] = field(default_factory=list)
    end_facts: tuple[int, ...] = ()  # with solved: the facts the search read off its last state
    # with solved: the facts the search read off each state along the plan, the start's first (len(actions) + 1)
    path_facts: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return ["(" + " ".join(a) + ")" for a in self.actions]

    def record(self, instance: str, system: str = "ami-planner", seconds: float | None = None) -> PlanRecord:
        """This result as the plan record (its plan only when solved)."""
        return PlanRecord(
            instance,
            system,
            self.status,
            self.labels if self.status == "solved" else [],
            self.reason,
            self.seconds if seconds is None else seconds,
            expansions=self.expansions,
            energies=self.energies,
        )


@dataclass(eq=False)
class _Node:
    latent: torch.Tensor | None  # (1, N+1, D); None on the best-first open list (re-encoded from `facts`)
    facts: tuple[int, ...]
    actions: tuple[int, ...]
    cost: float
    terms: tuple[dict, ...]
    path: tuple[tuple[int, ...], ...] = ()  # the facts of the states before this one, from the root
    popped: bool = False  # best-first with preferred actions: taken off one of the two open lists


class _Relevance:
    """Preferred actions (`SearchConfig.preferred`): which objects each candidate action names, and which objects
    each changing fact relates (static facts, a problem's types and fixed structure, relate none)."""

    def __init__(self, world: LatentWorld, goal: list[int]):
        sym = world.symbols
        static = set(sym.vocab.static)
        self.fact_objects = [frozenset() if f[0] in static else frozenset(f[1:]) for f in sym.facts]
        self.action_objects = [frozenset(a[1:]) for a in sym.actions]
        self.goal = list(goal)

    def objects(self, facts: tuple[int, ...]) -> set[str]:
        """The objects of the goal facts not holding in a state, and those sharing a changing fact with them."""
        held = set(facts)
        core: set[str] = set()
        for g in self.goal:
            if g not in held:
                core |= self.fact_objects[g]
        out = set(core)
        for f in facts:
            if self.fact_objects[f] & core:
                out |= self.fact_objects[f]
        return out

    def preferred(self, action: int, objects: set[str]) -> bool:
        return not self.action_objects[action].isdisjoint(objects)


def beam_search(
    world: LatentWorld,
    init_facts: list[int],
    goal: list[int],
    guardrails: list[Guardrail] = (),
    cfg: SearchConfig | None = None,
    extra: list[Energy] = (),
) -> PlanResult:
    cfg = cfg or SearchConfig()
    if cfg.goal_agenda:
        return agenda_search(world, init_facts, goal, guardrails, cfg, extra)
    best_first = cfg.strategy == "best-first"
    lazy = best_first and cfg.snap and (cfg.critic_goals == "each" or not cfg.critic_weight) and not extra
    t0 = time.perf_counter()
    task = TaskEnergy("task", cfg.task_weight, goal=list(goal))
    critic = CriticEnergy("critic", cfg.critic_weight)
    feas = FeasibilityEnergy("feasibility", cfg.feasibility_weight)
    root_latent = world.encode([list(init_facts)])
    root_probs = world.fact_probs(root_latent)
    root_facts = tuple(sorted((root_probs[0] > 0.5).nonzero().flatten().tolist()))
    if bool((root_probs[0, goal] > 0.5).all()):
        return PlanResult(
            "solved",
            [],
            "the goal already holds",
            root_latent,
            [],
            {},
            0,
            0,
            time.perf_counter() - t0,
            [world.facts_of(root_probs[0])],
            identities=getattr(world, "ids", None),
            end_facts=root_facts,
            path_facts=[root_facts],
        )
    frontier = [_Node(root_latent, root_facts, (), 0.0, ())]
    goal_set = set(goal)
    seen = {root_facts}
    expansions = generated = pruned_by_guardrail = 0
    blocked_by: set[str] = set()
    all_actions = torch.arange(world.n_actions)
    open_list: list = []  # best-first: (score, tie, node)
    preferred_list: list = []  # best-first with preferred actions: the children of preferred actions, the same way
    relevance = _Relevance(world, goal) if best_first and cfg.preferred else None
    rounds = itertools.count()
    # novelty: the facts seen so far among the states of each estimate (rounded steps to go)
    seen_at: dict[int, set[int]] = {}
    tie = itertools.count()
    depth = 0
    for _ in itertools.count():
        if best_first and frontier[0].latent is None:  # nodes popped off the open list: snapped, re-encode
            latents = world.encode([list(n.facts) for n in frontier])
        else:
            latents = torch.cat([n.latent for n in frontier], 0)
        app = world.applicable_probs(latents)  # (W, M)
        parent_idx, action_idx = (app > cfg.applicable_threshold).nonzero(as_tuple=True)
        if parent_idx.numel() == 0:  # the model sees no applicable action: try its best guesses
            top = app.topk(min(3, app.shape[1]), dim=1).indices
            parent_idx = torch.arange(len(frontier)).repeat_interleave(top.shape[1])
            action_idx = top.flatten()
        expansions += len(frontier)
        nxt = world.step(latents[parent_idx], all_actions[action_idx])
        probs = world.fact_probs(nxt)
        if cfg.snap:
            decoded = [tuple((p > 0.5).nonzero().flatten().tolist()) for p in probs]
            # children that decode to the same facts snap to the same latent: keep the one whose action the model
            # is surest of (never one a guardrail stops over one it lets through), and drop states already reached
            # (unless they hold the goal): nothing is lost, and the encoder, probe and critic run once per new
            # state (transpositions are common in a wide beam)
            p_app = app[parent_idx, action_idx]
            pre = StepView(probs, action_idx, p_app)
            allowed = torch.ones(len(decoded), dtype=torch.bool)
            for g in guardrails:
                allowed &= ~g.violated(pre)
            rank = list(zip(allowed.tolist(), p_app.tolist()))
            best: dict[tuple[int, ...], int] = {}
            for j, key in enumerate(decoded):
                if key in seen and not goal_set <= set(key):
                    continue
                if key not in best or rank[j] > rank[best[key]]:
                    best[key] = j
            if not best:
                best = {decoded[0]: 0}  # every child is a known state: score one, so the search ends cleanly
            pick = torch.tensor(sorted(best.values()))
            parent_idx, action_idx = parent_idx[pick], action_idx[pick]
            # the child's facts are what its prediction decoded to: the energies read them from that prediction
            # (reading the re-encoded state again costs a quarter of a search step at 15 objects)
            probs = probs[pick]
            # best-first keeps facts on its open list and encodes a node when it is expanded; when no energy reads
            # the children's latents (the critic per goal fact reads facts), they are not encoded now
            nxt = None if lazy else world.encode([list(decoded[j]) for j in pick.tolist()])
        generated += probs.shape[0]
        view = StepView(probs, action_idx, app[parent_idx, action_idx])
        keep = torch.ones(probs.shape[0], dtype=torch.bool)
        for g in guardrails:
            bad = g.violated(view)
            if bad.any():
                blocked_by.add(g.description or g.name)
                pruned_by_guardrail += int((bad & keep).sum())
            keep &= ~bad
        # the critic reads the children's facts as their predictions decoded them (the node's own facts, under snap)
        terms = _step_terms(world, view, goal, nxt, cfg, (task, feas, critic), guardrails, extra)
        cost_parents = torch.tensor([frontier[i].cost for i in parent_idx.tolist()])
        step_cost = cfg.depth_weight + feas.weight * terms["feasibility"]
        path_cost = cost_parents + step_cost
        score = (
            path_cost
            + task.weight * terms["task"]
            + (critic.weight * terms["critic"] if cfg.critic_weight else 0.0)
        )
        done = task.satisfied(view) & keep
        children: list[tuple[float, _Node, float, bool]] = []
        relevant = {}  # parent index -> the objects its preferred actions name
        for j in torch.argsort(score).tolist():
            if not keep[j]:
                continue
            facts = tuple(sorted((probs[j] > 0.5).nonzero().flatten().tolist()))
            if facts in seen and not done[j]:
                continue
            seen.add(facts)
            parent = frontier[int(parent_idx[j])]
            step_terms = {k: round(float(v[j]), 4) for k, v in terms.items()}
            node = _Node(
                None if nxt is None else nxt[j : j + 1],
                facts,
                parent.actions + (int(action_idx[j]),),
                float(path_cost[j]),
                parent.terms + (step_terms,),
                parent.path + (parent.facts,),
            )
            if done[j]:
                return _result(world, root_latent, node, expansions, generated, t0)
            est = float(view.steps_to_go[j]) if view.steps_to_go is not None else 0.0
            pref = False
            if relevance is not None:
                i = int(parent_idx[j])
                if i not in relevant:
                    relevant[i] = relevance.objects(parent.facts)
                pref = relevance.preferred(int(action_idx[j]), relevant[i])
            children.append((float(score[j]), node, est, pref))
            if len(children) >= cfg.beam_width and not best_first:
                break
        if best_first:
            for sc, node, est, pref in children:
                if len(node.actions) < cfg.max_depth:
                    if cfg.snap:
                        node.latent = None  # the open list keeps facts; popped nodes are re-encoded
                    if cfg.novelty:
                        known = seen_at.setdefault(round(est), set())
                        if not known.issuperset(node.facts):
                            known.update(node.facts)
                        else:
                            sc += NOT_NOVEL  # after every node that is new at its estimate
                    entry = (sc, next(tie), node)
                    heapq.heappush(open_list, entry)
                    if pref:
                        heapq.heappush(preferred_list, entry)
            children = []
            while len(children) < cfg.beam_width:
                # every other pick, the first included, from the preferred actions' list (while it holds a node
                # not yet taken)
                lists = (open_list, preferred_list) if next(rounds) % 2 else (preferred_list, open_list)
                for heap in lists:
                    while heap and heap[0][2].popped:
                        heapq.heappop(heap)
                heap = lists[0] if lists[0] else lists[1]
                if not heap:
                    break
                sc, _, node = heapq.heappop(heap)
                node.popped = True
                children.append((sc, node, 0.0, False))
        if not children:
            if pruned_by_guardrail and blocked_by:
                reason = "every plan breaks a guardrail: " + "; ".join(sorted(blocked_by))
            else:
                reason = "no new state is reachable in the model's predictions: the goal looks unreachable"
            return PlanResult(
                "no_plan",
                reason=reason,
                expansions=expansions,
                generated=generated,
                seconds=time.perf_counter() - t0,
            )
        frontier = [n for _, n, _, _ in children]
        release_freed_memory()  # over 1 GB, hand what this round freed back (a wide beam on 15 blocks climbs)
        depth = max(depth, max(len(n.actions) for n in frontier))
        if not best_first and depth >= cfg.max_depth:
            break
        elapsed = time.perf_counter() - t0
        if expansions >= cfg.max_expansions or elapsed > cfg.time_limit:
            spent = "expansions" if expansions >= cfg.max_expansions else "time"
            return _budget_spent(f"depth {depth}", spent, expansions, generated, elapsed)
    return PlanResult(
        "no_plan",
        reason=f"no plan within {cfg.max_depth} steps",
        expansions=expansions,
        generated=generated,
        seconds=time.perf_counter() - t0,
    )


def _step_terms(
    world, view: StepView, goal, latents, cfg: SearchConfig, energies, guardrails, extra=()
) -> dict:
    """Each energy's term for the steps of `view` (whose states are `latents`, when the critic reads latents):
    the task, feasibility and, with a critic weight, the critic's steps to go (set on `view`), then `extra` and
    the guardrails. `energies`: the (task, feasibility, critic) energies."""
    task, feas, critic = energies
    if not cfg.critic_weight:
        view.steps_to_go = None
    elif cfg.critic_goals == "each":
        view.steps_to_go = world.steps_to_go_each(goal, view.fact_probs)
    else:
        view.steps_to_go = world.steps_to_go(latents, goal, view.fact_probs)
    terms = {"task": task(view), "feasibility": feas(view)}
    if cfg.critic_weight:
        terms["critic"] = critic(view)
    for e in extra:
        terms[e.name] = e(view)
    for g in guardrails:
        terms[f"guardrail:{g.name}"] = g(view)
    return terms


def _budget_spent(detail: str, spent: str, expansions: int, generated: int, seconds: float) -> PlanResult:
    """`no_plan` for a search whose budget ran out ("time" or "expansions" first), saying how far it got."""
    return PlanResult(
        "no_plan",
        reason=f"search budget spent ({expansions} expansions, {detail}, {seconds:.1f} s; {spent} ran out first); "
        "the goal may be unreachable",
        expansions=expansions,
        generated=generated,
        seconds=seconds,
        budget_spent=True,
        spent=spent,
    )


def _result(
    world: LatentWorld, root_latent, node: _Node, expansions: int, generated: int, t0: float, traj=None
) -> PlanResult:
    actions = [world.symbols.actions[a] for a in node.actions]
    # the latent trajectory the decoder conditions on: the pure rollout of the chosen actions from the start
    if traj is None:
        traj = world.unroll(root_latent, list(node.actions))
    totals: dict[str, float] = {}
    for t in node.terms:
        for k, v in t.items():
            totals[k] = round(totals.get(k, 0.0) + v, 4) if k != "task" else v
    probs = world.fact_probs(traj)
    return PlanResult(
        "solved",
        actions,
        "",
        traj,
        list(node.terms),
        totals,
        expansions,
        generated,
        time.perf_counter() - t0,
        [world.facts_of(p) for p in probs],
        identities=getattr(world, "ids", None),
        end_facts=node.facts,
        path_facts=list(node.path) + [node.facts],
    )


def agenda_search(
    world: LatentWorld,
    init_facts: list[int],
    goal: list[int],
    guardrails: list[Guardrail] = (),
    cfg: SearchConfig | None = None,
    extra: list[Energy] = (),
) -> PlanResult:
    """The whole goal first, then its facts one at a time (a goal agenda). A search for the whole goal at once gets
    `AGENDA_AFTER` of the budget; when it spends that without a plan, the fact the critic puts nearest is searched
    for (`beam_search` with `cfg`'s settings) together with the goal facts already holding, which every later step
    must keep, from the state reached so far; the plans join into one. Each of these searches is short and led by one
    estimate, where the search for the whole goal is led by a sum of many, whose errors add up. Complete only for
    worlds whose goal facts never stand in each other's way (logistics' packages; not blocksworld's towers, built
    bottom up). The budget (seconds, expansions) is shared by all the searches; one that ends without a plan ends the
    call with its reason, as does a search for the whole goal that runs out of states to try."""
    cfg = cfg or SearchConfig()
    sub_cfg = replace(cfg, goal_agenda=False)
    t0 = time.perf_counter()
    whole = beam_search(
        world,
        init_facts,
        goal,
        guardrails,
        replace(
            sub_cfg,
            time_limit=cfg.time_limit * AGENDA_AFTER,
            max_expansions=max(1, int(cfg.max_expansions * AGENDA_AFTER)),
        ),
        extra,
    )
    if whole.status == "solved" or not whole.budget_spent:
        whole.seconds = time.perf_counter() - t0
        return whole
    root_latent = world.encode([list(init_facts)])
    facts = tuple(sorted((world.fact_probs(root_latent)[0] > 0.5).nonzero().flatten().tolist()))
    actions: list[int] = []
    terms: list[dict] = []
    path: list[tuple[int, ...]] = []
    expansions, generated = whole.expansions, whole.generated
    while True:
        held = set(facts)
        open_goals = [g for g in goal if g not in held]
        if not open_goals:
            break
        probs = world.fact_probs(world.encode([list(facts)]))
        nearest = open_goals[int(world.steps_to_go_per_fact(open_goals, probs)[0].argmin())]
        elapsed = time.perf_counter() - t0
        remaining, left = cfg.time_limit - elapsed, cfg.max_expansions - expansions
        if remaining <= 0 or left <= 0:
            reached = f"the whole goal's search spent its share, then fact by fact {len(goal) - len(open_goals)} of "
            reached += f"the goal's {len(goal)} facts reached in {len(actions)} steps"
            return _budget_spent(
                reached, "expansions" if left <= 0 else "time", expansions, generated, elapsed
            )
        kept = [g for g in goal if g in held]
        sub = beam_search(
            world,
            list(facts),
            kept + [nearest],
            guardrails,
            replace(sub_cfg, time_limit=remaining, max_expansions=left),
            extra,
        )
        expansions += sub.expansions
        generated += sub.generated
        if sub.status != "solved":
            sub.reason = (
                f"the whole goal's search spent its share of the budget; fact by fact, {len(kept)} of the goal's "
                f"{len(goal)} facts reached, then: {sub.reason}"
            )
            sub.expansions, sub.generated, sub.seconds = expansions, generated, time.perf_counter() - t0
            return sub
        actions += [world.symbols.action_index[tuple(a)] for a in sub.actions]
        terms += sub.step_energies
        path += sub.path_facts[:-1]
        facts = sub.end_facts
    node = _Node(None, facts, tuple(actions), 0.0, tuple(terms), tuple(path))
    return _result(world, root_latent, node, expansions, generated, t0)


def rescored(
    world: LatentWorld,
    init_facts: list[int],
    goal: list[int],
    actions: list[int],
    path: list[tuple[int, ...]],
    cfg: SearchConfig,
    guardrails: list[Guardrail] = (),
) -> PlanResult:
    """A solved result for a plan the search did not produce itself (a shortened one, `planner.shorten`), with
    its energies read along the latent trajectory the decoder reads: each step's feasibility, task and guardrail
    terms, and the critic's estimate after it. `path`: the facts of its states as the caller read them."""
    t0 = time.perf_counter()
    root_latent = world.encode([list(init_facts)])
    ids = torch.tensor(actions, dtype=torch.long)
    traj = world.unroll(root_latent, actions)
    used = sorted(set(actions))
    col = torch.tensor([used.index(a) for a in actions])
    app = applicable_of(world, traj[:-1], used)[torch.arange(len(actions)), col]
    probs = world.fact_probs(traj[1:])
    view = StepView(probs, ids, app)
    energies = (
        TaskEnergy("task", cfg.task_weight, goal=list(goal)),
        FeasibilityEnergy("feasibility", cfg.feasibility_weight),
        CriticEnergy("critic", cfg.critic_weight),
    )
    terms = _step_terms(world, view, goal, traj[1:], cfg, energies, guardrails)
    steps = tuple({k: round(float(v[j]), 4) for k, v in terms.items()} for j in range(len(actions)))
    node = _Node(None, tuple(path[-1]), tuple(actions), 0.0, steps, tuple(path[:-1]))
    return _result(world, root_latent, node, 0, 0, t0, traj)
