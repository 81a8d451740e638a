"""planner/worlds/spec.py: problems of a world described by a spec (logistics), and the typed candidate symbols
(planner/encoding.py) that follow a problem's static facts."""

import random
from pathlib import Path

import pytest

from planner.data import TrajectorySampler
from planner.encoding import ProblemSymbols, Vocabulary
from planner.worlds.errors import WorldError
from planner.worlds.generate import ProblemGenerator, problem_to_pddl
from planner.worlds.oracle import solve
from planner.worlds.pddl import load_domain, parse_problem
from planner.worlds.spec import WorldSpec
from planner.worlds.strips import Task

WORLDS = Path(__file__).resolve().parents[3] / "ami_agent" / "worlds"


@pytest.fixture(scope="module")
def logistics():
    return load_domain(WORLDS / "logistics.pddl")


def test_spec_problems_are_logistics(logistics):
    spec = WorldSpec.beside(logistics)
    rng = random.Random(3)
    for _ in range(20):
        p = spec.sample(logistics, rng)
        cities = {a[1] for a in p.init if a[0] == "city"}
        trucks = {a[1] for a in p.init if a[0] == "truck"}
        assert len(trucks) == len(cities)  # one truck per city
        city_of = {a[1]: a[2] for a in p.init if a[0] == "in-city"}
        airports = {a[1] for a in p.init if a[0] == "airport"}
        assert len(airports) == len(cities) and {city_of[a] for a in airports} == cities
        at = {a[1]: a[2] for a in p.init if a[0] == "at"}
        assert {o for o in at} == set(p.objects) - cities - set(
            city_of
        )  # every vehicle and package is somewhere
        assert all(at[a[1]] in airports for a in p.init if a[0] == "airplane")
        assert p.goal and all(g[0] == "at" and g[1].startswith("p") and at[g[1]] != g[2] for g in p.goal)
        again = parse_problem(problem_to_pddl(p), logistics)
        assert (again.init, again.goal) == (p.init, p.goal)
    small = spec.sample(logistics, rng, counts={"city": 2, "location": 2, "package": 2, "airplane": 1})
    assert solve(Task(logistics, small)).status == "solved"


def test_counts_sizes_and_unsolvable(logistics):
    spec = WorldSpec.beside(logistics)
    rng = random.Random(5)
    big = spec.sample(logistics, rng, counts={"city": 4, "location": [3, 4], "package": 10, "airplane": 3})
    kinds = [o[0] for o in big.objects]
    assert (
        kinds.count("c") == 4
        and kinds.count("p") == 10
        and kinds.count("a") == 3
        and 12 <= kinds.count("l") <= 16
    )
    assert len(spec.sample(logistics, rng, n_objects=9).objects) == 9
    for _ in range(5):
        u = spec.sample(logistics, rng, unsolvable=True)
        assert solve(Task(logistics, u), max_expansions=50_000).status != "solved"
    with pytest.raises(WorldError, match="no group 'ship'"):
        spec.sample(logistics, rng, counts={"ship": 1})
    with pytest.raises(WorldError, match="no problem of 3 objects"):
        spec.skeleton(rng, 3)


def test_generator_uses_the_spec_and_says_when_there_is_none(logistics, tmp_path):
    p = ProblemGenerator(logistics, rng=1).sample(10)
    assert len(p.objects) == 10
    bare = tmp_path / "bare.pddl"
    bare.write_text((WORLDS / "logistics.pddl").read_text())
    with pytest.raises(WorldError, match="world spec beside the domain file"):
        ProblemGenerator(load_domain(bare), rng=1)
    (tmp_path / "bare.problems.yaml").write_text("objects:\n  city: {per: nowhere}\n")
    with pytest.raises(WorldError, match="names no group"):
        ProblemGenerator(load_domain(bare), rng=1)


def test_typed_candidates_follow_static_facts(logistics):
    vocab = Vocabulary.from_domain(logistics)
    assert vocab.typed and "in-city" in vocab.static and "at" not in vocab.static
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    p = WorldSpec.beside(logistics).sample(logistics, random.Random(2), counts={"city": 2, "location": 2})
    sym = ProblemSymbols(vocab, list(p.objects), p.init)
    task = Task(logistics, p)
    # every reachable ground action that changes something is a candidate, and no candidate breaks a static
    # precondition (a truck drives within its city, an airplane flies between airports)
    moving = {(a.name, *a.args) for a in task.actions if len(set(a.args)) == len(a.args)}
    assert moving <= set(sym.actions) and set(task.facts) <= set(sym.facts)
    for a in sym.actions:
        if a[0] == "drive-truck":
            assert {("in-city", a[2], a[4]), ("in-city", a[3], a[4]), ("truck", a[1])} <= p.init
        if a[0] == "fly-airplane":
            assert {("airport", a[2]), ("airport", a[3]), ("airplane", a[1])} <= p.init
        if a[0].startswith("load") or a[0].startswith("unload"):
            assert {("obj", a[1]), ("location", a[3])} <= p.init
    with pytest.raises(ValueError, match="pass init"):
        ProblemSymbols(vocab, list(p.objects))


def test_untyped_vocabulary_is_unchanged(bw_domain):
    vocab = Vocabulary.from_domain(bw_domain)
    assert not vocab.typed and vocab.to_dict().keys() == {"predicates", "actions"}
    assert len(ProblemSymbols(vocab, ["a", "b", "c"]).actions) == 2 * 3 + 2 * 6


def test_a_batch_shares_one_skeleton(logistics):
    vocab = Vocabulary.from_domain(logistics)
    sampler = TrajectorySampler(logistics, vocab, rng=random.Random(0))
    trajs, sym = sampler.batch(12, 8, 3, 0.5)
    assert len(trajs) == 8 and all(t.objects == tuple(sym.objects) for t in trajs)
    for t in trajs:
        for s, app in zip(t.states, t.applicable):
            assert max(s) < len(sym.facts) and all(a < len(sym.actions) for a in app)


def test_a_problem_rebased_on_its_skeletons_universe_runs_as_its_own_task(logistics):
    gen = ProblemGenerator(logistics, rng=4)
    sk = gen.skeleton(14)
    for _ in range(5):
        p = gen.on_skeleton(sk)
        own, rebased = Task(logistics, p), gen.task_on(sk, p)
        state_own, state_re = own.init, rebased.init
        rng = random.Random(0)
        for _ in range(15):  # the same random walk in both: the same actions can run, the same facts follow
            a_own = {own.actions[i].label for i in own.applicable(state_own)}
            a_re = {rebased.actions[i].label for i in rebased.applicable(state_re)}
            assert a_own == a_re
            label = rng.choice(sorted(a_own))
            state_own = own.apply(state_own, own.actions[[a.label for a in own.actions].index(label)])
            state_re = rebased.apply(
                state_re, rebased.actions[[a.label for a in rebased.actions].index(label)]
            )
            assert own.state_facts(state_own) == rebased.state_facts(state_re)
        assert rebased.goal_reachable and rebased.state_facts(rebased.goal) == p.goal
