"""Scaling suites: generated blocksworld problems by optimal plan length K and by block count N, and the same
problems in mystery blocksworld's words. Seeded and made on the fly (a run caches them in its output folder so a
resumed run asks the same questions); never written into the repository.

`gen:blocksworld:K=12`: 50 problems whose optimal plans have exactly 12 steps, of as many blocks as such plans need
(K/3 to K/2 + 4, at least 3 and up to 8; from K = 28 on, K/3 to K/3 + 3 blocks with the whole target as the goal). `gen:blocksworld:N=15`: 50 random problems of 15 blocks (random towers,
a random subset of a random target's `on` facts as the goal, as `ami-agent world sample` makes them), with their
optimal length where the A* oracle finds it within its budget. `gen:mystery:...`: the same problems, statement for
statement, in PlanBench's mystery domain and English. Both worlds' domains and English are PlanBench's (read from its
folder: evaluation data only), so every query reads as PlanBench's do. Optimal
lengths come from `planner.worlds.oracle.solve_blocks` (A* over block moves)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

from ami_agent.services import WORLDS_DIR
from eval.cases import Case, zero_shot_query
from eval.suites import load_suite
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.errors import WorldError
from planner.worlds.generate import ProblemGenerator, object_names
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve_blocks
from planner.worlds.pddl import Domain, Problem, load_domain

WORLDS = ("blocksworld", "mystery")
K_VALUES = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 28, 32)
N_VALUES = (3, 4, 5, 6, 8, 10, 12, 15, 20, 30)
PER_SUITE = 50
MAX_BLOCKS = 30  # the colours of the agent's blocksworld English (PlanBench's 12, then pink ... bronze)
FULL_GOALS_FROM = 28
ORACLE_SECONDS = 2.0  # A*'s budget per problem while making the suites
_SPEC = re.compile(r"^gen:(blocksworld|mystery):([KN])=(\d+)$")


def scaling_suites(worlds=WORLDS, ks=K_VALUES, ns=N_VALUES) -> list[str]:
    return [f"gen:{w}:K={k}" for w in worlds for k in ks] + [f"gen:{w}:N={n}" for w in worlds for n in ns]


def parse_spec(spec: str) -> tuple[str, str, int]:
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(
            f"generated suites look like gen:blocksworld:K=12 (optimal plan length) or gen:mystery:N=15 (blocks), "
            f"got {spec!r}"
        )
    world, axis, value = m.group(1), m.group(2), int(m.group(3))
    if (axis == "K" and (value < 2 or value % 2)) or (axis == "N" and not 3 <= value <= MAX_BLOCKS):
        raise ValueError(
            f"{spec}: K is an even plan length of at least 2 (blocksworld plans alternate lifting and placing); "
            f"N is 3 to {MAX_BLOCKS} blocks"
        )
    return world, axis, value


def world_files(world: str, planbench_dir=None) -> tuple[Path, Path]:
    """A world's domain and English: PlanBench's blocksworld or mystery blocksworld (its domain file and config), so
    the queries read as PlanBench's do."""
    suite = "planbench:blocksworld" if world == "blocksworld" else "planbench:mystery_blocksworld"
    inst = load_suite(suite, planbench_dir, limit=1)[0]
    return inst.domain_path, inst.nl_config_path


def named_config(config: NLConfig, objects: list[str]) -> NLConfig:
    """The config with a phrase for every object. Where its names follow one pattern ("object a", "object b"),
    objects past its last name get the same ("object m"); where they are colours ("red block"), the next colours of
    the agent's blocksworld English (ami_agent/worlds/blocksworld.yaml), so the agent reads these problems."""
    enc = config.encoded_objects
    missing = [o for o in objects if o not in enc]
    if not missing:
        return config
    if all(v.endswith(k) for k, v in enc.items()) and len({v[: -len(k)] for k, v in enc.items()}) == 1:
        prefix = next(v[: -len(k)] for k, v in enc.items())
        return replace(config, encoded_objects={**enc, **{o: prefix + o for o in missing}})
    suffixes = {v.split(" ", 1)[1] for v in enc.values() if " " in v}
    used = {v.split(" ", 1)[0] for v in enc.values()}
    known = NLConfig.load(WORLDS_DIR / "blocksworld.yaml").compact_objects.values()
    colours = [c for c in known if c not in used]
    if len(suffixes) != 1 or len(colours) < len(missing):
        raise WorldError(
            f"the English names {len(enc)} objects; these problems have {len(objects)}",
            source=config.source,
            hint="Name more objects in its encoded_objects, or use fewer",
        )
    suffix = suffixes.pop()
    return replace(
        config,
        encoded_objects={**enc, **{o: f"{c} {suffix}" for o, c in zip(missing, colours)}},
        compact_objects={**config.compact_objects, **dict(zip(missing, colours))},
    )


def _blocks_range(k: int) -> tuple[int, int]:
    if k >= FULL_GOALS_FROM:  # whole towers as goals: about 3 steps a block
        return k // 3, k // 3 + 3
    return max(3, k // 3), max(8, k // 2 + 4)


def _make(domain: Domain, axis: str, value: int, count: int) -> list[tuple[Problem, int | None]]:
    """The suite's problems with their optimal lengths (None where A* ran out of budget). The seed depends on the
    axis and value only, so blocksworld and mystery get the same problems."""
    names = blocksworld_names(domain)
    rng = random.Random(f"scaling-{axis}{value}")
    gen = ProblemGenerator(domain, None, rng)
    out: list[tuple[Problem, int | None]] = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 200 * count:
            raise WorldError(
                f"found only {len(out)} problems of optimal length {value} in {tries - 1} tries",
                hint="Use a shorter K",
            )
        n = rng.randint(*_blocks_range(value)) if axis == "K" else value
        # long plans need goals of many facts: from K = 28 on, the target's whole towers
        full = axis == "K" and value >= FULL_GOALS_FROM
        p = gen.sample(n, name=f"{axis.lower()}{value}-{len(out) + 1}", goal_facts=n if full else None)
        r = solve_blocks(p, names, time_limit=ORACLE_SECONDS, max_length=value if axis == "K" else None)
        length = len(r.plan) if r.status == "solved" else None
        if axis == "N" or length == value:
            out.append((p, length))
    return out


def load_scaling(spec: str, planbench_dir=None, limit: int | None = None, cache_dir: Path | None = None):
    """The suite's cases (eval.cases.Case), `limit` of them (default 50). With `cache_dir`, the problems are
    kept there (one JSON file per axis and value, shared by both worlds) and read back on later runs."""
    world, axis, value = parse_spec(spec)
    domain_path, nl_path = world_files(world, planbench_dir)
    domain = load_domain(domain_path)
    names = blocksworld_names(domain)
    count = min(limit or PER_SUITE, PER_SUITE)
    cache = cache_dir / f"{axis}={value}.json" if cache_dir else None
    rows = json.loads(cache.read_text()) if cache and cache.exists() else []
    bw = load_domain(WORLDS_DIR / "blocksworld.pddl")
    to_canon = {v: k for k, v in blocksworld_names(bw).items()}
    if len(rows) < count:
        rows = [
            {
                "name": p.name,
                # in the project's blocksworld; each world renames them
                "init": sorted([a[0], *a[1:]] for a in p.init),
                "goal": sorted([a[0], *a[1:]] for a in p.goal),
                "optimal_length": length,
            }
            for p, length in _make(bw, axis, value, max(count, len(rows)))
        ]
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(rows))
    vb = Verbalizer(domain, named_config(NLConfig.load(nl_path), object_names(MAX_BLOCKS)))
    out = []

    def rename(atom) -> tuple:
        return (names[to_canon[atom[0]]], *atom[1:])

    for r in rows[:count]:
        objects = sorted({x for a in r["init"] for x in a[1:]})
        p = Problem(
            r["name"],
            domain.name,
            {o: "object" for o in objects},
            frozenset(rename(a) for a in r["init"]),
            frozenset(rename(a) for a in r["goal"]),
            "<generated>",
        )
        out.append(Case(spec, p.name, domain, p, vb, zero_shot_query(vb, p), r["optimal_length"], True))
    return out
