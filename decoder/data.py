"""Decoder training data: generated problems (never PlanBench instances), their plans, and the world model's latent
trajectory of each plan: (problem, latent plan) -> answer.

The plans are the optimal oracle plans of generated problems (the same distribution the latent planner returns:
97% of its plans are optimal); the latent trajectory and identity vectors come from the world model, exactly as
the planner hands them to the decoder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from decoder.projector import PlanLatents, StateLatents
from decoder.prompt import PromptSpec, build_prompt, build_state_prompt
from planner.checkpoint import load_checkpoint
from planner.latent import LatentWorld
from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve_optimal
from planner.worlds.pddl import Domain, Problem, load_domain
from planner.worlds.plans import parse_plan_text
from planner.worlds.strips import Task


@dataclass
class World:
    """A world the decoder speaks for: its domain, English templates and world-model checkpoint."""

    name: str  # key of its projector
    domain: Domain
    verbalizer: Verbalizer
    checkpoint: Path
    model: object = None  # the loaded WorldModel

    @classmethod
    def load(cls, name: str, domain_path: Path, nl_config: Path | None, checkpoint: Path) -> World:

        d = load_domain(domain_path)
        vb = Verbalizer(d, NLConfig.load(nl_config) if nl_config else None)
        model, _ = load_checkpoint(checkpoint)
        return cls(name, d, vb, Path(checkpoint), model)


@dataclass
class Example:
    world: str
    objects: list[str]
    plan: PlanLatents
    prompt: PromptSpec
    actions: list[tuple[str, ...]]
    init: frozenset = frozenset()
    goal: frozenset = frozenset()
    state: StateLatents | None = None  # a state to describe (then `plan` is the walk that reached it)
    facts: frozenset = frozenset()  # the described state's true facts


def plan_latents(world: World, problem: Problem, actions, seed: int) -> PlanLatents:
    lw = LatentWorld(world.model, list(problem.objects), seed, problem.init)
    init = lw.encode([lw.fact_ids(problem.init)])
    ids = [lw.symbols.action_index[tuple(a)] for a in actions]
    traj = lw.unroll(init, ids)
    return PlanLatents.from_plan(world.model, lw.ids[0], actions, lw.symbols, traj)


class ExampleSampler:
    def __init__(
        self,
        worlds: list[World],
        objects: tuple[int, int] = (3, 5),
        text_fraction: float = 0.25,
        rng: int | random.Random = 0,
        walk_fraction: float = 0.5,
        codes_for=None,
        codebook: int | None = None,
        walk_steps: int = 14,
    ):
        """codes_for(world name, latent plan, objects) -> object -> code character: the codes the answer writes
        (decoder/prompt.py); None writes none (prompts for a throughput workload, never trained on).
        codebook: draw each plan's codes at random from that many (training: `PlanLatents.order`); None: the
        codebook's own order, as decoding assigns them. walk_steps: the longest random walk."""
        self.walk_fraction = walk_fraction
        self.codebook = codebook
        self.walk_steps = walk_steps
        self.codes_for = codes_for
        self.worlds = worlds
        self.objects = objects
        self.text_fraction = text_fraction
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.gens = {w.name: ProblemGenerator(w.domain, None, self.rng) for w in worlds}

    def sample(self, world: World | None = None, mode: str | None = None) -> Example:
        """Half the plans are the oracle's optimal ones; half are random walks whose end state gives the goal.
        A walk's order cannot be guessed from the problem text, so the decoder learns to read the soft plan
        rather than to re-plan from the text (which makes it write a plausible plan of its own)."""
        w = world or self.rng.choice(self.worlds)
        p, actions = self._walk(w) if self.rng.random() < self.walk_fraction else self._optimal(w)
        objects = list(p.objects)
        mode = mode or ("latent+text" if self.rng.random() < self.text_fraction else "latent")
        latents = plan_latents(w, p, actions, self.rng.randrange(1 << 30))
        if self.codebook:
            latents.order = self.rng.sample(range(self.codebook), len(objects))
        codes = self.codes_for(w.name, latents, objects) if self.codes_for else None
        spec = build_prompt(w.verbalizer, objects, p.init, p.goal, actions, mode, codes=codes)
        return Example(w.name, objects, latents, spec, actions, p.init, p.goal)

    def sample_state(self, world: World | None = None, walk_steps: int | None = None) -> Example:
        """A state to describe: a random walk of 0 to `walk_steps` (default: the sampler's) steps from a generated
        problem's initial state; the world model's latent state predicted at the walk's end (encoded at the start:
        no step), the simulator's true state as the answer."""
        w = world or self.rng.choice(self.worlds)
        p = self.gens[w.name].sample(self.rng.randint(*self.objects))
        task = Task(w.domain, p)
        state, steps = self._random_walk(task, self.rng.randint(0, walk_steps or self.walk_steps))
        objects = list(p.objects)
        latents = plan_latents(w, p, steps, self.rng.randrange(1 << 30))
        if self.codebook:
            latents.order = self.rng.sample(range(self.codebook), len(objects))
        facts = task.state_facts(state)
        codes = self.codes_for(w.name, latents, objects) if self.codes_for else None
        spec = build_state_prompt(w.verbalizer, objects, facts, codes)
        return Example(
            w.name, objects, latents, spec, steps, p.init, p.goal, latents.state_at(len(steps)), facts
        )

    def _random_walk(self, task: Task, length: int):
        """(the state reached, the steps taken): up to `length` random applicable actions from the initial state,
        of distinct arguments (the world model's candidate actions; "drive a truck from l1 to l1" is none)."""
        state, steps = task.init, []
        for _ in range(length):
            app = [
                i
                for i in task.applicable(state)
                if len(set(task.actions[i].args)) == len(task.actions[i].args)
            ]
            if not app:
                break
            a = task.actions[self.rng.choice(app)]
            state = task.apply(state, a)
            steps.append((a.name, *a.args))
        return state, steps

    def _optimal(self, w: World):
        for _ in range(100):
            p = self.gens[w.name].sample(self.rng.randint(*self.objects))
            res = solve_optimal(w.domain, p)
            if res.status == "solved" and res.plan:
                return p, parse_plan_text("\n".join(res.plan), w.domain, p)
        raise RuntimeError(f"could not generate a solvable problem in world {w.name}")

    def _walk(self, w: World):
        for _ in range(100):
            p = self.gens[w.name].sample(self.rng.randint(*self.objects))
            task = Task(w.domain, p)
            state, steps = self._random_walk(task, self.rng.randint(1, self.walk_steps))
            changed = sorted(task.state_facts(state) - task.state_facts(task.init))
            if steps and changed:
                goal = frozenset(self.rng.sample(changed, self.rng.randint(1, len(changed))))
                return Problem(p.name, p.domain_name, p.objects, p.init, goal, p.source), steps
        return self._optimal(w)
