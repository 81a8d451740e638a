"""eval/harness.py: systems x suites, judged by the validator, resumable, reported."""

import json

from eval import harness
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.oracle import solve_blocks


def test_eval_run_is_judged_resumable_and_reported(tmp_path, planbench):
    cases = harness.load_cases("planbench:blocksworld", planbench, limit=3)
    cases += harness.load_cases("gen:blocksworld:K=2", planbench, limit=2)
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


class ScriptedBackend:
    """A unit-test edge: answers from a script, one list of texts per call, and counts what it was asked."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        self.adapters = []

    def generate(self, requests, adapter=None, sampling=None):
        from decoder.backends import Completion

        texts = self.script.pop(0)
        self.calls.append((len(requests), sampling.temperature))
        self.adapters.append((adapter, sampling.max_tokens))
        return [Completion(t, 10, 5) for t in texts[: len(requests)]]


class Tok:
    def apply_chat_template(self, messages, **kw):
        return {"input_ids": [1, 2, 3]}


def test_verify_samples_until_the_validator_accepts(planbench):
    cases = harness.load_cases("planbench:blocksworld", planbench, limit=2)
    c0, c1 = cases
    plan1 = solve_blocks(c1.problem, blocksworld_names(c1.domain)).plan
    right1 = "\n".join(c1.verbalizer.action(tuple(a[1:-1].split())) for a in plan1)
    # greedy: both wrong; round two (3 samples): the second problem right at its second sample; the first never
    script = [["nonsense", "nonsense"], ["nonsense", "nonsense"], ["nonsense", right1]]
    script += [["nonsense"]] * 13
    backend = ScriptedBackend(script)
    recs = list(harness.run_llm(cases, backend, Tok(), "ar-sft-verify", "sft", verify=True))
    r0, r1 = recs
    assert r1["status"] == "solved" and r1["valid"] and r1["tokens_out"] == 3 * 5
    assert r0["status"] == "no_plan" and r0["tokens_out"] == 16 * 5 and "16 answers" in r0["reason"]
    assert [n for n, _ in backend.calls] == [2, 2, 2] + [1] * 13  # the solved problem is not asked again
    assert backend.calls[0][1] == 0.0 and all(t == 0.7 for _, t in backend.calls[1:])
    assert r0["cpu_seconds"] >= r1["cpu_seconds"] >= 0


def test_llm_systems_answer_each_world_with_its_adapter(planbench):
    """Mixed suites: each world's cases go to its own adapter, with room for its plans' tokens."""
    cases = harness.load_cases("planbench:blocksworld", planbench, limit=2)
    cases += harness.load_cases("planbench:logistics", planbench, limit=1)
    cases += harness.load_cases("planbench:mystery_blocksworld", planbench, limit=1)
    backend = ScriptedBackend([["nonsense"] * 2, ["nonsense"], ["nonsense"]])
    recs = list(harness.run_llm_by_world(cases, lambda: (backend, Tok()), "ar-sft", lambda w: f"sft-{w}"))
    assert [r["suite"] for r in recs] == [
        "planbench:blocksworld",
        "planbench:blocksworld",
        "planbench:logistics",
        "planbench:mystery_blocksworld",
    ]
    assert [a for a, _ in backend.adapters] == [
        "sft-blocksworld-4ops",
        "sft-logistics-strips",
        "sft-mystery-4ops",
    ]
    tokens = dict(backend.adapters)
    assert tokens["sft-blocksworld-4ops"] == 600
    assert tokens["sft-logistics-strips"] == harness.answer_tokens(cases[2])
