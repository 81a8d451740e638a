import json
import subprocess
import sys

import pytest
from conftest import BLOCKSWORLD

from ami_agent.cli import main
from ami_agent.record import PlanRecord


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


@pytest.mark.parametrize(
    "argv, words",
    [
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


def test_train_decoder_refuses_bad_fractions_and_weights(capsys):
    """Out-of-range training options are a one-line user error before anything loads."""
    for args in (["--walk-fraction", "1.5"], ["--text-fraction", "-0.1"], ["--name-weight", "0"]):
        assert main(["train", "decoder", *args]) == 2
        e = capsys.readouterr().err
        assert args[0] in e and "Traceback" not in e


def test_train_decoder_refuses_to_continue_a_decoder_of_another_kind(capsys, tmp_path):
    """--codebook with --legend-names, --write-codes without --interleave, or continuing a decoder trained without --codebook with it: a one-line
    error before the base model loads."""
    from decoder.api import DEFAULT_DIR

    assert main(["train", "decoder", "--codebook", "--legend-names"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main(["train", "decoder", "--codebook", "--write-codes"]) == 2  # written codes need --interleave
    assert "--write-codes needs --interleave and --codebook" in capsys.readouterr().err
    from decoder.train import load_projectors

    committed = load_projectors(DEFAULT_DIR / "projector.pt")
    interleaved = any(p.config.get("interleave") for p, _ in committed.values())
    flag = "--no-interleave" if interleaved else "--interleave"  # the other layout
    code = main(["train", "decoder", flag, "--init-from", str(DEFAULT_DIR), "--out", str(tmp_path / "d")])
    e = capsys.readouterr().err
    assert code == 2 and "--interleave: continue it with the same options" in e and "Traceback" not in e
    assert not (tmp_path / "d").exists()


def test_decoder_eval_refuses_bad_mode_views_and_vote(capsys):
    for args in (["--mode", "words"], ["--views", "0"], ["--vote", "lines"]):
        assert main(["decoder", "eval", "--suite", "planbench:blocksworld", *args]) == 2
        e = capsys.readouterr().err
        assert args[0] in e and "Traceback" not in e


def test_train_world_model_refuses_bad_train_only_and_fractions(files, capsys):
    """--train-only names known parts and continues a checkpoint, fractions are in [0, 1]: anything else is a
    one-line error."""
    domain = files[0]
    for args, says in (
        (["--train-only", "critic"], "--init-from"),
        (["--train-only", "critic,decoder", "--init-from", "x.pt"], "decoder"),
        (["--train-only", " , "], "empty"),
        (["--full-goal-fraction", "1.5"], "--full-goal-fraction"),
        (["--optimal-fraction", "-0.1"], "--optimal-fraction"),
        (["--attention", "sparse"], "--attention"),
        (["--attention", "local", "--init-from", "x.pt"], "new model"),
        (["--critic-attention", "sparse"], "--critic-attention"),
    ):
        assert main(["train", "world-model", "--domain", str(domain), *args]) == 2
        e = capsys.readouterr().err
        assert says in e and "Traceback" not in e


def test_plan_refuses_bad_search_options(capsys):
    for args in (
        ["--ensemble", "0"],
        ["--task-weight", "-1"],
        ["--strategy", "dfs"],
        ["--critic-weight", "-2"],
    ):
        assert main(["plan", "--suite", "planbench:blocksworld", *args]) == 2
        e = capsys.readouterr().err
        assert args[0] in e and "Traceback" not in e
