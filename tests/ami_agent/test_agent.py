"""The agent end to end on the real stack: latent planner, the committed decoder on the real vLLM engine (the test
session's), LangGraph with a real SQLite checkpointer, the real HTTP server with the official `openai` client."""

import json
import time
import urllib.error
import urllib.request

import pytest
import torch
from support import free_port

from ami_agent.agent import Agent
from ami_agent.nodes import decode_item
from ami_agent.services import WORLDS_DIR, AgentConfig, blocksworld
from decoder.prompt import read_state
from planner.worlds.pddl import Problem, load_domain
from planner.worlds.plans import parse_plan_text, validate

DOMAIN, VB = blocksworld()


START = (
    "As initial conditions I have that, the red block is clear, the yellow block is clear, the hand is empty, "
    "the red block is on top of the blue block, the yellow block is on top of the orange block, the blue block is on "
    "the table and the orange block is on the table."
)


GOAL = "My goal is to have that the orange block is on top of the red block."


INIT = {
    ("clear", "a"), ("clear", "d"), ("handempty",), ("on", "a", "b"), ("on", "d", "c"), ("ontable", "b"),
    ("ontable", "c"),
}  # fmt: skip


def _end(plan: list[str]) -> frozenset:
    """The simulator's state after the plan's steps from INIT."""
    p = Problem("t", DOMAIN.name, {o: "object" for o in "abcd"}, frozenset(INIT), frozenset())
    return validate(DOMAIN, p, parse_plan_text("\n".join(plan), DOMAIN, p)).final_state


def _valid(plan: list[str], goal: set) -> bool:
    p = Problem("t", DOMAIN.name, {o: "object" for o in "abcd"}, frozenset(INIT), frozenset(goal))
    return validate(DOMAIN, p, parse_plan_text("\n".join(plan), DOMAIN, p)).valid


def test_planning_turn_is_planned_decoded_and_verified(agent):
    res = agent.ask(f"{START} {GOAL}", thread="t1")
    assert res["status"] == "solved", res
    rec = res["plan_record"]
    assert _valid(rec["plan"], {("on", "c", "a")})
    assert [t["node"] for t in res["trace"]][:5] == ["perceive", "plan", "guard", "decode", "verify"]
    assert res["trace"][-1]["node"] == "respond"
    assert rec["expansions"] > 0 and rec["tokens_out"] > 0 and "task" in rec["energies"]
    planned = next(t for t in res["trace"] if t["node"] == "plan")
    # four blocks: the beam finds it within its share of the expansions. Its share of the seconds depends on the
    # machine's load (CI once ran out of it), so only a deterministic escalation fails the test
    assert planned["escalated_by"] != "expansions", planned
    assert planned["escalated"] is (planned["escalated_by"] == "time"), planned
    assert planned["budget_spent"] is False
    assert "orange block" in res["reply"] and "[PLAN]" in res["reply"]
    # the reply closes with the end state in words, as the world model predicts it; true of the plan's end
    last = res["reply"].splitlines()[-1]
    assert last.startswith("At the end: "), res["reply"]
    assert read_state(VB, last.removeprefix("At the end: "), list("abcd")) == (_end(rec["plan"]), [])


def test_questions_about_the_plans_states(agent):
    """After a plan, questions about its states are answered by the decoder from the predicted latent states,
    checked against the world model's own read-out (here judged by the simulator)."""
    first = agent.ask(f"{START} {GOAL}", thread="s1")
    assert first["status"] == "solved"
    plan = first["plan_record"]["plan"]
    res = agent.ask("What's on the blue block after step 1?", thread="s1")
    assert res["status"] == "state" and [t["node"] for t in res["trace"]] == [
        "perceive",
        "describe",
        "respond",
    ]
    after1 = _end(plan[:1])
    above = [a[1] for a in after1 if a[0] == "on" and a[2] == "b"]
    said = (
        f"the {VB.object_phrase(above[0])} is on top of the blue block"
        if above
        else "nothing is on the blue block"
    )
    assert res["reply"].startswith("After step 1: ") and said in res["reply"].lower(), res["reply"]
    whole = agent.ask("and what does it all look like before you start?", thread="s1")
    assert whole["status"] == "state" and whole["reply"].startswith(
        "Before the first step, my world model predicts"
    )
    assert read_state(VB, whole["reply"].split("predicts: ", 1)[1], list("abcd"))[0] == frozenset(INIT)
    beyond = agent.ask(f"what is on red after step {len(plan) + 1}?", thread="s1")
    assert beyond["status"] == "clarify" and f"{len(plan)} step" in beyond["reply"]


def test_free_phrasing_is_read_by_the_reader_adapter(agent):
    """Words the world's templates do not know go to the LoRA reader, which reads the whole request (a tower from
    the bottom up, a block by itself, a rule); the reply starts with what was read, and the plan keeps the rule."""
    text = (
        "From bottom to top I have blue, then red. Yellow is on orange, and orange is on the table. Could you get "
        "orange onto red? Never put yellow on the table."
    )
    res = agent.ask(text, thread="free-1")
    perceive = next(t for t in res["trace"] if t["node"] == "perceive")
    assert perceive["reader"] == "adapter", res
    assert res["status"] == "solved", res
    first = res["reply"].splitlines()[0]
    assert first.startswith("You have: red on blue, yellow on orange, blue and orange on the table."), first
    assert "You want: orange on red." in first and "never put yellow on the table" in first, first
    assert _valid(res["plan_record"]["plan"], {("on", "c", "a")})
    assert "(put-down d)" not in res["plan_record"]["plan"]


def test_a_request_without_a_place_for_a_block_is_asked_about(agent):
    res = agent.ask("Red is on blue and blue is on the table. Please put green on red.", thread="free-2")
    assert res["status"] == "clarify" and "green" in res["reply"], res["reply"]


def test_bench_reader_reports_readings(agent, capsys):
    """`ami-agent bench reader` reads the hand-written requests with perception alone and reports, per request,
    whether the reading is exact and how long it took."""
    from ami_agent.cli import main

    assert main(["bench", "reader", "--limit", "3", "--backend", "transformers"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["requests"] == 6 and set(summary["by_expect"]) >= {"plan"}  # 3 requests, 3 threads
    assert 0 <= summary["exact"] <= 6 and summary["median_seconds"] > 0


def test_guardrails_in_words(agent):
    res = agent.ask(f"{START} {GOAL} Never put the yellow block on the table.", thread="t2")
    assert res["status"] == "solved", res
    assert not any(step == "(put-down d)" for step in res["plan_record"]["plan"])
    assert _valid(res["plan_record"]["plan"], {("on", "c", "a")})
    blocked = agent.ask(f"{START} {GOAL} Do not use unstack.", thread="t3")
    assert blocked["status"] == "no_plan"
    assert '"Do not use unstack" blocks the goal' in blocked["reply"], blocked["reply"]  # its words, quoted


def test_a_new_memory_lists_no_threads(agent, tmp_path):
    fresh = Agent(AgentConfig(memory=tmp_path / "new.sqlite"), backend=agent.backend)
    try:
        assert fresh.threads() == []  # the web page lists threads before the first message
    finally:
        fresh.close()


def test_the_thread_survives_a_restart(agent):
    """Everything a later turn needs is in the thread's SQLite state: an agent started afresh on the same file (new
    planner objects, nothing shared but the file) rebuilds the plan's latent trajectory bit for bit from the
    stored facts, actions and identity draws, decodes it into an answer that reads back as the plan, and takes the
    follow-up."""
    first = agent.ask(f"{START} {GOAL}", thread="t4")
    assert first["status"] == "solved"
    state = agent.thread_state("t4")
    before = decode_item(state, agent.services)
    again = Agent(AgentConfig(memory=agent.memory_path), backend=agent.backend)  # a new process's view
    try:
        stored = again.thread_state("t4")
        assert (
            stored["problem"]["goal"] == [["on", "c", "a"]]
            and stored["plan"]["labels"] == first["plan_record"]["plan"]
        )
        after = decode_item(stored, again.services)
        assert again.services.world.planner is not agent.services.world.planner
        assert torch.equal(after.plan.states, before.plan.states)
        assert torch.equal(after.plan.identities, before.plan.identities)
        assert again.decoder.decode([after])[0].faithful  # and it still reads back as the plan
        asked = again.ask(
            "what will it look like at the end?", thread="t4"
        )  # the stored plan, after a restart
        assert asked["status"] == "state" and asked["reply"].startswith("At the end"), asked
        assert read_state(VB, asked["reply"].split("predicts: ", 1)[1], list("abcd"))[0] == _end(
            first["plan_record"]["plan"]
        )
        res = again.ask("Now put the yellow block on top of the orange block as well.", thread="t4")
        assert res["status"] == "solved", res
        assert _valid(res["plan_record"]["plan"], {("on", "c", "a"), ("on", "d", "c")})
    finally:
        again.close()


def test_questions_chat_and_bad_input(agent):
    q = agent.ask("Put the peach block on the red block.", thread="t5")
    assert q["status"] == "clarify" and "peach" in q["reply"]
    chat = agent.ask("What is the capital of France?", thread="t5")
    assert chat["status"] == "chat" and chat["plan_record"] is None and chat["reply"]
    for bad in ("", "x" * 40_000, "\x00\x01binary"):
        r = agent.ask(bad, thread="t5")
        assert r["status"] == "error" and r["reply"]
    assert agent.ask(f"{START} {GOAL}", thread="t5")["status"] == "solved"


def test_openai_client_against_serve(server):
    from openai import OpenAI

    client = OpenAI(base_url=server + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["ami-agent"]
    r = client.chat.completions.create(
        model="ami-agent",
        messages=[{"role": "user", "content": f"{START} {GOAL}"}],
        extra_body={"thread_id": "s1"},
    )
    extra = r.model_dump()
    assert extra["plan_record"]["status"] == "solved"
    assert _valid(extra["plan_record"]["plan"], {("on", "c", "a")})
    assert "[PLAN]" in r.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="ami-agent",
            messages=[
                {"role": "user", "content": "Now put the yellow block on top of the orange block as well."}
            ],
            extra_body={"thread_id": "s1"},
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[PLAN]" in text
    assert chunks[-1].model_dump()["plan_record"]["status"] == "solved"
    chat = client.chat.completions.create(model="ami-agent", messages=[{"role": "user", "content": "Hello!"}])
    assert "plan_record" not in chat.model_dump() or chat.model_dump()["plan_record"] is None


def test_server_rejects_bad_bodies_clearly(server):
    def post(data: bytes):
        req = urllib.request.Request(
            server + "/v1/chat/completions", data, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    for body in (
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"messages": []}',
        b'{"messages": [{"role": "assistant"}]}',
    ):
        code, data = post(body)
        assert code == 400 and data["error"]["message"], body
    code, data = post(json.dumps({"messages": [{"role": "user", "content": ""}]}).encode())
    assert code == 200 and data["ami"]["status"] == "error"
    with urllib.request.urlopen(server + "/healthz") as r:
        assert json.loads(r.read())["status"] == "ok"


@pytest.mark.slow
def test_concurrent_clients_keep_their_threads(server):
    from eval.load import run_load
    from planner.worlds.nl import NLConfig, Verbalizer

    vb = Verbalizer(DOMAIN, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))
    res = run_load(server, DOMAIN, vb, clients=4, requests=3, seed=5)
    s = res.summary()
    assert s["answered"] == 12 and s["errors"] == 0 and s["mismatches"] == 0, s


def test_another_world_read_in_its_own_english(agent, planbench):
    """PlanBench's mystery blocksworld, added from its folder: the agent reads the query with that world's
    templates, plans with that world's model and speaks through that world's projector; blocksworld still works."""
    from eval.suites import load_suite
    from planner.worlds.nl import NLConfig, Verbalizer
    from planner.worlds.pddl import load_problem

    inst = load_suite("planbench:mystery_blocksworld", planbench, 1)[0]
    d = load_domain(inst.domain_path)
    agent.add_world(d, Verbalizer(d, NLConfig.load(inst.nl_config_path)))
    p = load_problem(inst.problem_path, d)
    res = agent.ask(inst.query, thread="m1")
    assert res["status"] == "solved", res
    assert validate(d, p, parse_plan_text("\n".join(res["plan_record"]["plan"]), d, p)).valid
    verify = [t for t in res["trace"] if t["node"] == "verify"][-1]
    assert verify["chosen"] in ("latent", "latent+text")
    assert [c["mode"] for c in verify["candidates"]][0] == "latent"
    assert agent.thread_state("m1")["problem"]["world"] == d.name
    back = agent.ask(f"{START} {GOAL}", thread="m2")
    assert back["status"] == "solved" and agent.thread_state("m2")["problem"]["world"] == DOMAIN.name


def test_logistics_is_planned_and_spoken_in_its_own_world(agent):
    """A logistics request in PlanBench's phrasing goes to the packaged logistics world: read with the types its
    names imply, planned by its world model under a rule in its terms, written by its own adapter, verified."""
    import random

    from planner.worlds.spec import WorldSpec

    d = load_domain(WORLDS_DIR / "logistics.pddl")
    p = WorldSpec.beside(d).sample(
        d, random.Random(3), counts={"city": 2, "location": 2, "package": 1, "airplane": 2}
    )
    vb = agent.services.worlds[d.name].verbalizer
    res = agent.ask(vb.statement(p.init, p.goal) + " Do not use airplane_1.", thread="lg1")
    assert res["status"] == "solved", res
    plan = parse_plan_text("\n".join(res["plan_record"]["plan"]), d, p)
    assert validate(d, p, plan).valid and all("a1" not in step for step in plan)
    assert agent.thread_state("lg1")["problem"]["world"] == d.name
    assert res["reply"].startswith("You have: ") and "Rules: Do not use airplane_1" in res["reply"]
    assert vb.read_plan(res["reply"].split("\n", 1)[1], list(p.objects), facts=p.init) == plan


def test_a_free_logistics_request_is_planned_in_its_world(agent):
    """A logistics request in the user's own words (not PlanBench's template) is read by the names' types, planned
    by the logistics world model and written by its adapter; the reply says what was read first."""
    from planner.worlds.pddl import Problem

    text = (
        "Move package_2 from location_0_1 to location_1_1. location_0_0 and location_0_1 are in city_0, "
        "location_1_0 and location_1_1 in city_1. The airports are location_0_0 and location_1_0. truck_0 is at "
        "location_0_0, truck_1 at location_1_1, airplane_0 at location_0_0."
    )
    d = load_domain(WORLDS_DIR / "logistics.pddl")
    vb = agent.services.worlds[d.name].verbalizer
    init = {("at", "p2", "l0-1"), ("at", "t0", "l0-0"), ("at", "t1", "l1-1"), ("at", "a0", "l0-0")}
    init |= {("in-city", f"l{c}-{i}", f"c{c}") for c in (0, 1) for i in (0, 1)} | {
        ("airport", "l0-0"),
        ("airport", "l1-0"),
    }
    objects = sorted({o for a in init for o in a[1:]})
    init |= vb.type_facts(objects)
    p = Problem(
        "free", d.name, {o: "object" for o in objects}, frozenset(init), frozenset({("at", "p2", "l1-1")})
    )
    res = agent.ask(text, thread="lg-free")
    assert res["status"] == "solved", res
    assert validate(d, p, parse_plan_text("\n".join(res["plan_record"]["plan"]), d, p)).valid
    assert res["reply"].startswith("You have: ") and "You want: package_2 is at location_1_1" in res["reply"]
    assert agent.thread_state("lg-free")["problem"]["world"] == d.name


@pytest.mark.slow  # ~55 s: a second engine; test_the_thread_survives_a_restart keeps restarts in `make test`
def test_a_killed_server_keeps_the_thread(tmp_path):
    """`ami-agent serve` killed (SIGKILL) between a plan and its follow-up: a new server on the same SQLite file
    takes the follow-up in the same thread."""
    import os
    import signal
    import subprocess
    import sys

    memory, port = tmp_path / "agent.sqlite", free_port()
    cmd = [sys.executable, "-m", "ami_agent.cli", "serve", "--backend", "transformers", "--port", str(port)]
    cmd += ["--memory", str(memory)]

    def start():
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return proc
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        proc.kill()
        raise AssertionError("the server did not start")

    def ask(text):
        body = {"messages": [{"role": "user", "content": text}], "thread_id": "k1"}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    proc = start()
    try:
        first = ask(f"{START} {GOAL}")
        assert first["plan_record"]["status"] == "solved", first
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = start()
    try:
        res = ask("Now put the yellow block on top of the orange block as well.")
        assert res["plan_record"]["status"] == "solved", res
        assert _valid(res["plan_record"]["plan"], {("on", "c", "a"), ("on", "d", "c")})
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_POOLS = """
import os, sys, time, torch
torch.set_num_threads(2)
from ami_agent.agent import Agent
from ami_agent.services import AgentConfig, on_own_thread

def threads(settled=None):  # threads that end leave /proc a moment later
    for _ in range(40):
        n = len(os.listdir("/proc/self/task"))
        if settled is None or n <= settled:
            break
        time.sleep(0.05)
    return n

def parallel():  # an operation PyTorch runs on its OpenMP pool
    torch.ones(4_000_000).mul_(2)

n0 = threads()
Agent(AgentConfig(memory=sys.argv[1]))
n1 = threads(n0)
on_own_thread(parallel)
n2 = threads(n0)
parallel()
print(n0, n1, n2, threads(n0))
"""


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_loading_leaves_the_callers_thread_without_an_openmp_pool(tmp_path):
    """The agent's models load on a thread of their own: the caller keeps no OpenMP worker thread (libgomp stops
    letting its workers spin once more threads hold pools than there are cores, and the nodes run on LangGraph's
    threads). The check itself can fail: an operation on the caller's thread leaves one worker thread behind."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _POOLS, str(tmp_path / "m.sqlite")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    n0, n1, n2, n3 = map(int, out.stdout.split()[-4:])
    assert n1 == n2 == n0, (n0, n1, n2)
    assert n3 == n0 + 1, (n0, n3)
