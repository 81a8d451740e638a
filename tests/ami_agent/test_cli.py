"""ami_agent/cli: the commands, their one-line errors and their records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BLOCKSWORLD

from ami_agent.cli import main
from planner.record import PlanRecord

WORLDS = Path(__file__).resolve().parents[2] / "ami_agent" / "worlds"


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "domain.pddl"
    d.write_text(BLOCKSWORLD)
    p = tmp_path / "p.pddl"
    p.write_text("""(define (problem p) (:domain blocksworld-4ops) (:objects a b)
(:init (handempty) (ontable a) (ontable b) (clear a) (clear b)) (:goal (and (on a b))))""")
    return d, p


def test_solve_json_is_a_plan_record(files, capsys):
    d, p = files
    assert main(["world", "solve", "--domain", str(d), "--problem", str(p), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert set(rec) == {
        "instance",
        "system",
        "status",
        "plan",
        "reason",
        "seconds",
        "tokens_in",
        "tokens_out",
        "expansions",
        "energies",
    }
    assert rec["status"] == "solved" and rec["plan"] == ["(pick-up a)", "(stack a b)"]
    assert PlanRecord.from_dict(rec).instance == "p.pddl"


def test_solve_planbench_prints_english(planbench, capsys):
    assert (
        main(
            [
                "world",
                "solve",
                "--suite",
                "planbench:blocksworld",
                "--instance",
                "1",
                "--planbench-dir",
                str(planbench),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "the validator says: Plan valid" in text
    assert "1. unstack the blue block from on top of the orange block" in text


def test_check_valid_and_invalid(files, tmp_path, capsys):
    d, p = files
    good = tmp_path / "good.plan"
    good.write_text("(pick-up a)\n(stack a b)\n")
    bad = tmp_path / "bad.plan"
    bad.write_text("(pick-up a)\n(pick-up b)\n")
    assert main(["world", "check", "--domain", str(d), "--problem", str(p), "--plan", str(good)]) == 0
    assert "Plan valid" in capsys.readouterr().out
    assert (
        main(["world", "check", "--domain", str(d), "--problem", str(p), "--plan", str(bad), "--json"]) == 1
    )
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["failed_step"] == 2 and verdict["unmet_preconditions"] == ["(handempty)"]


def test_sample_writes_problems(files, tmp_path, capsys):
    d, _ = files
    assert (
        main(
            [
                "world",
                "sample",
                "--domain",
                str(d),
                "--objects",
                "5",
                "--count",
                "3",
                "--out",
                str(tmp_path / "gen"),
            ]
        )
        == 0
    )
    assert sorted(f.name for f in (tmp_path / "gen").iterdir()) == [
        "instance-1.pddl",
        "instance-2.pddl",
        "instance-3.pddl",
    ]


def test_sample_a_spec_world_with_counts_and_unsolvable(tmp_path, capsys):
    from planner.worlds.pddl import load_domain, load_problem
    from planner.worlds.strips import Task

    dom = str(WORLDS / "logistics.pddl")
    args = ["world", "sample", "--domain", dom, "--count", "2", "--out"]
    assert main([*args, str(tmp_path / "big"), "--counts", "city=4,location=3-4,package=10,airplane=3"]) == 0
    assert main([*args, str(tmp_path / "bad"), "--unsolvable"]) == 0
    d = load_domain(dom)
    for f in (tmp_path / "big").iterdir():
        p = load_problem(f, d)
        assert (
            sum(o.startswith("p") for o in p.objects) == 10 and sum(o.startswith("c") for o in p.objects) == 4
        )
    assert all(not Task(d, load_problem(f, d)).goal_reachable for f in (tmp_path / "bad").iterdir())


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["world", "sample", "--domain", str(WORLDS / "blocksworld.pddl"), "--counts", "city=2"],
            "--counts and --unsolvable need a world spec beside the domain file",
        ),
        (
            ["world", "sample", "--domain", str(WORLDS / "logistics.pddl"), "--counts", "city=two"],
            "--counts: expected GROUP=N or GROUP=LOW-HIGH",
        ),
        (
            ["world", "sample", "--domain", str(WORLDS / "logistics.pddl"), "--counts", "ship=2"],
            "no group 'ship' in the world spec",
        ),
        (
            ["world", "solve", "--domain", "missing.pddl", "--problem", "x.pddl"],
            "missing.pddl: no such domain file",
        ),
        (["world", "solve", "--problem", "x.pddl"], "give --domain D.pddl and --problem P.pddl"),
        (
            ["world", "solve", "--suite", "planbench:nope", "--instance", "1"],
            "unknown suite 'planbench:nope'",
        ),
        (["world", "sample", "--domain", "missing.pddl", "--count", "0"], "--count must be at least 1"),
        (["report", "--systems", "ami,gpt-9"], "unknown system(s) gpt-9"),
        (["report", "--worlds", "logistics"], "--worlds takes blocksworld, mystery"),
        (["eval", "--suite", "gen:blocksworld:K=5"], "K is an even plan length"),
        (["decoder", "eval", "--generated", "6,eight"], "--generated takes object counts"),
        (["decoder", "eval", "--generated", "6", "--suite", "planbench:blocksworld"], "not both"),
        (["decoder", "eval"], "give --suite"),
    ],
)
def test_errors_are_one_clear_line(argv, words, capsys):
    assert main(argv) == 2
    e = capsys.readouterr().err
    assert words in e and "Traceback" not in e


def test_malformed_file_names_line_and_token(files, tmp_path, capsys):
    d, _ = files
    p = tmp_path / "broken.pddl"
    p.write_text(
        "(define (problem p) (:domain blocksworld-4ops) (:objects a)\n(:init (handempty) (onn a))\n"
        "(:goal (and (ontable a))))"
    )
    assert main(["world", "solve", "--domain", str(d), "--problem", str(p)]) == 2
    e = capsys.readouterr().err
    assert "broken.pddl:2:21: unknown predicate 'onn'" in e and "Traceback" not in e


def test_console_script_runs(files):
    d, p = files
    exe = [sys.executable, "-m", "ami_agent.cli"]
    r = subprocess.run(
        exe + ["world", "solve", "--domain", str(d), "--problem", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "solved optimally in 2 steps" in r.stdout
    r = subprocess.run(exe + ["world", "bogus"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_training_refuses_a_budget_of_no_minutes(capsys):
    """A one-line user error before anything loads."""
    for command in ("decoder", "reader", "ar-sft", "world-model"):
        extra = ["--domain", "x.pddl"] if command == "world-model" else []
        assert main(["train", command, *extra, "--minutes", "-1"]) == 2
        e = capsys.readouterr().err
        assert "--minutes" in e or "x.pddl" in e, e
        assert "Traceback" not in e


def test_train_ar_sft_refuses_an_added_world_with_world_or_out(capsys, tmp_path):
    """--add-world trains into the world's own folder: --world or --out beside it is a one-line error, before the
    base model loads."""
    for extra in (["--world", "planbench:blocksworld"], ["--out", str(tmp_path)]):
        assert main(["train", "ar-sft", "--add-world", "x.pddl", *extra]) == 2
        e = capsys.readouterr().err
        assert "--add-world" in e and "Traceback" not in e


def test_decoder_eval_refuses_a_bad_mode(capsys):
    assert main(["decoder", "eval", "--suite", "planbench:blocksworld", "--mode", "words"]) == 2
    e = capsys.readouterr().err
    assert "--mode" in e and "Traceback" not in e


def test_train_world_model_refuses_a_bad_recipe(files, tmp_path, capsys):
    """A recipe file that names an unknown field or part, a fraction outside [0, 1], a first stage that trains
    only some parts, or a budget of no minutes: a one-line error naming the file and field, before any work."""
    domain = files[0]
    for text, says in (
        ("model:\n  attention: sparse\n", "attention"),
        ("stages:\n  - minute: 3\n", "unknown field(s) minute"),
        ("stages:\n  - minutes: 3\n  - train_only: [critic, decoder]\n", "decoder"),
        ("stages:\n  - train_only: [critic]\n", "first stage"),
        ("stages:\n  - full_goal_fraction: 1.5\n", "full_goal_fraction"),
        ("colour: red\n", "`model:`, `stages:` and `search:`"),
        ("search:\n  strategy: dfs\n", "strategy must be one of beam, best-first"),
    ):
        recipe = tmp_path / "r.yaml"
        recipe.write_text(text)
        out = tmp_path / "m.pt"
        argv = ["train", "world-model", "--domain", str(domain), "--config", str(recipe), "--out", str(out)]
        assert main(argv) == 2, text
        e = capsys.readouterr().err
        assert says in e and "Traceback" not in e, (text, e)
        assert not out.exists()
    assert main(["train", "world-model", "--domain", str(domain), "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err


def test_plan_refuses_bad_options(capsys):
    for args in (["--actor", "dfs"], ["--slip", "0.5"]):
        assert main(["plan", "--suite", "planbench:blocksworld", *args]) == 2
        e = capsys.readouterr().err
        assert args[0] in e and "Traceback" not in e
