"""eval/harness.py: systems x suites, judged by the validator, resumable, reported."""

import json

import pytest

from eval import harness


def test_generated_suite_has_the_asked_optimal_length():
    cases = harness.generated_cases("gen:blocksworld:steps=4", limit=4)
    assert len(cases) == 4
    assert all(c.optimal_length == 4 and 3 <= len(c.problem.objects) <= 8 for c in cases)
    assert "[STATEMENT]" in cases[0].query and harness.QUESTION in cases[0].query
    with pytest.raises(ValueError, match="gen:blocksworld:steps=K"):
        harness.generated_cases("gen:logistics:steps=3")


def test_eval_run_is_judged_resumable_and_reported(tmp_path, planbench):
    cases = harness.load_cases("planbench:blocksworld", planbench, limit=3)
    cases += harness.generated_cases("gen:blocksworld:steps=2", limit=2)
    assert harness.run_system("oracle", cases, tmp_path, harness.run_oracle) == 5
    assert harness.run_system("oracle", cases, tmp_path, harness.run_oracle) == 0  # resumed: nothing left
    assert harness.run_system("ami-planner", cases, tmp_path, harness.run_planner) == 5
    rows = harness.load_records(tmp_path, ["oracle", "ami-planner"])
    assert len(rows) == 10 and all(r["valid"] for r in rows if r["system"] == "oracle")
    assert all(r["plan"] == [] or r["status"] == "solved" for r in rows)
    summary = harness.summarize(rows)
    assert summary["planbench:blocksworld"]["oracle"]["success"] == 3
    frontier = harness.frontier_rows(planbench, ["planbench:blocksworld"])
    assert 0.3 < frontier["planbench:blocksworld"]["gpt-4o_chat (PlanBench, zero-shot)"] < 0.34
    harness.write_report(tmp_path, summary, frontier, rows)
    report = (tmp_path / "report.md").read_text()
    assert "| planbench:blocksworld |" in report and "gpt-4o" in report
    assert (tmp_path / "success_by_length.png").stat().st_size > 1000


def test_a_wrong_llm_plan_is_judged_invalid(planbench):
    case = harness.load_cases("planbench:blocksworld", planbench, limit=1)[0]
    rec = harness._record(case, "ar-zero-shot", "solved", [("stack", "a", "b")], 0.1)
    assert rec["valid"] is False and json.dumps(rec)


def test_llm_system_answers_are_read_and_judged(hf_backend, planbench):
    cases = harness.load_cases("planbench:blocksworld", planbench, limit=2)
    recs = list(harness.run_llm(cases, hf_backend, hf_backend.tok, "ar-zero-shot", None, max_tokens=48))
    assert [r["instance"] for r in recs] == [c.name for c in cases]
    for r in recs:
        assert r["system"] == "ar-zero-shot" and r["tokens_out"] > 0 and r["tokens_in"] > 300
        assert r["status"] in ("solved", "no_plan") and (r["status"] == "solved" or not r["valid"])
