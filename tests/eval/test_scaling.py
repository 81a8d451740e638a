"""eval/scaling.py, the A* oracle it measures with, and eval/report.py."""

import json
import random

import pytest

from ami_agent.services import WORLDS_DIR
from eval import report
from eval.harness import load_cases
from eval.scaling import load_scaling, parse_spec, scaling_suites
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.generate import ProblemGenerator
from planner.worlds.oracle import solve, solve_blocks
from planner.worlds.pddl import load_domain
from planner.worlds.plans import parse_plan_text, validate
from planner.worlds.strips import Task

BW = load_domain(WORLDS_DIR / "blocksworld.pddl")


def test_astar_oracle_is_optimal_and_valid():
    names = blocksworld_names(BW)
    rng = random.Random(3)
    gen = ProblemGenerator(BW, None, rng)
    for _ in range(40):
        p = gen.sample(rng.randint(3, 6))
        bfs, astar = solve(Task(BW, p)), solve_blocks(p, names)
        assert astar.status == "solved" and len(astar.plan) == len(bfs.plan)
        assert validate(BW, p, parse_plan_text("\n".join(astar.plan), BW, p)).valid
    big = gen.sample(20)
    r = solve_blocks(big, names, time_limit=30)
    assert r.status == "solved" and validate(BW, big, parse_plan_text("\n".join(r.plan), BW, big)).valid


def test_k_suites_have_their_optimal_length_and_are_cached(tmp_path, planbench):
    cases = load_cases("gen:blocksworld:K=14", planbench, limit=3, cache_dir=tmp_path)
    assert [c.optimal_length for c in cases] == [14, 14, 14]
    names = blocksworld_names(BW)
    assert all(len(solve_blocks(c.problem, names).plan) == 14 for c in cases)
    assert "[STATEMENT]" in cases[0].query
    cached = json.loads((tmp_path / "K=14.json").read_text())
    again = load_cases("gen:blocksworld:K=14", planbench, limit=2, cache_dir=tmp_path)
    assert len(cached) == 3 and [c.problem for c in again] == [c.problem for c in cases[:2]]
    # a longer run starts with the same problems
    longer = load_cases("gen:blocksworld:K=14", planbench, limit=4)
    assert [c.problem for c in longer][:3] == [c.problem for c in cases]


def test_n_suites_name_every_block_in_words(planbench):
    (case,) = load_scaling("gen:blocksworld:N=30", planbench, limit=1)
    assert len(case.problem.objects) == 30
    assert "bronze block" in case.query and " ad " not in case.query
    assert "I have the following restrictions on my actions" in case.query  # PlanBench's own English
    for bad in (
        "gen:blocksworld:K=5",
        "gen:blocksworld:N=31",
        "gen:logistics:K=4",
        "gen:blocksworld:steps=4",
    ):
        with pytest.raises(ValueError, match="gen:blocksworld:K=12|K is an even|N is 3 to 30"):
            parse_spec(bad)
    assert len(scaling_suites()) == 2 * (14 + 10)


def test_mystery_suites_are_the_same_problems_renamed(planbench):
    bw = load_scaling("gen:blocksworld:K=6", planbench, limit=2)
    my = load_scaling("gen:mystery:K=6", planbench, limit=2)
    for b, m in zip(bw, my):
        assert m.domain.name != b.domain.name and m.optimal_length == b.optimal_length == 6
        assert sorted(len(a) for a in m.problem.init) == sorted(len(a) for a in b.problem.init)
        assert "red block" not in m.query and "object a" in m.query
    (big,) = load_scaling("gen:mystery:N=15", planbench, limit=1)
    assert "object o" in big.query  # past PlanBench's 12 names, the same pattern


def _row(suite, system, valid, cpu=1.0, tokens=0):
    return {
        "status": "solved" if valid else "no_plan",
        "suite": suite,
        "system": system,
        "instance": "x",
        "valid": valid,
        "seconds": 0.5,
        "cpu_seconds": cpu,
        "tokens_out": tokens,
    }


def test_report_ratios_costs_and_plots(tmp_path):
    rows = []
    for k in (2, 16, 18):
        for i in range(4):
            rows += [
                _row(f"gen:blocksworld:K={k}", "ami", True, 2.0),
                _row(f"gen:blocksworld:K={k}", "ar-sft", i < (2 if k < 16 else 1), 1.0, 50),
                _row(f"gen:blocksworld:K={k}", "ar-sft-verify", i < 2, 8.0, 400),
            ]
    rows += [_row("gen:blocksworld:N=10", "ami", True), _row("gen:blocksworld:N=10", "ar-sft", False)]
    rows += [{**_row("gen:blocksworld:K=2", "ar-zero-shot", False), "status": "solved"}]  # a plan, rejected
    rows += [_row("planbench:blocksworld", "ami", True)]  # not a scaling suite: left out
    s = report.write(tmp_path, rows, "ami-agent report")
    h = s["headline"]["blocksworld"]
    assert h["K>=16"]["best_ar"] == "ar-sft-verify" and h["K>=16"]["ami_over_best_ar"] == 2.0
    assert h["N>=10"]["ami_over_best_ar"] == "inf" and h["N>=10"]["best_ar"] == "none solved any"
    assert h["cost"]["ami"] == {
        "problems": 13,
        "solved": 13,
        "invalid_plans_given": 0,
        "cpu_seconds_per_problem": 1.92,
        "cpu_seconds_per_solved": 1.92,
        "tokens_out_per_problem": 0.0,
    }
    assert h["cost"]["ar-sft-verify"]["cpu_seconds_per_solved"] == 16.0
    assert (
        h["cost"]["ar-zero-shot"]["invalid_plans_given"] == 1
        and h["cost"]["ar-sft"]["invalid_plans_given"] == 0
    )
    text = (tmp_path / "report.md").read_text()
    assert "| gen:blocksworld:K=16 | 4/4 | - | 1/4 | 2/4 |" in text  # ar-zero-shot: only at K=2
    for f in ("scaling_k.png", "scaling_n.png", "cost.png"):
        assert (tmp_path / f).stat().st_size > 5000
