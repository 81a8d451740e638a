"""Talking to the agent: `ask`, `chat`, `serve`, `demo`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ami_agent.cli.common import Backend, Host, Json, Memory, Thread, Url, UserError, agent, app, err, out


def _show_answer(res: dict) -> None:
    if res["reply"]:
        out.print(res["reply"], markup=False)
    rec = res.get("plan_record")
    if rec and rec.get("status") == "solved":
        energies = ", ".join(f"{k} {v:g}" for k, v in (rec.get("energies") or {}).items())
        err.print(
            f"[plan] {' '.join(rec['plan'])}  |  energies: {energies}  |  expansions {rec['expansions']}",
            markup=False,
        )
    nodes = " -> ".join(f"{t['node']} {t['seconds']:.2f}s" for t in res.get("trace", []))
    if nodes:
        err.print(f"[{res['status']}] {nodes}", markup=False)


@app.command("ask")
def ask_cmd(
    text: Annotated[str, typer.Argument(help="Your message; '-' reads it from stdin")],
    thread: Thread = None,
    as_json: Json = False,
    backend: Backend = "transformers",
    url: Url = None,
    memory: Memory = None,
):
    """One turn with the agent."""
    if text == "-":
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the message on stdin is not UTF-8 text") from None
    a = agent(backend, url, memory)
    try:
        res = a.ask(text, thread=thread or "cli")
    finally:
        a.close()
    if as_json:
        out.print(
            json.dumps({k: res[k] for k in ("reply", "status", "thread", "plan_record", "trace")}),
            markup=False,
        )
    else:
        _show_answer(res)


@app.command("chat")
def chat_cmd(thread: Thread = None, backend: Backend = "auto", url: Url = None, memory: Memory = None):
    """Talk with the agent in the terminal (empty line or Ctrl-D ends)."""
    import uuid

    from ami_agent.agent import remainder

    a = agent(backend, url, memory)
    thread = thread or f"chat-{uuid.uuid4().hex[:8]}"
    err.print(f"thread {thread}; starting the decoder ...")
    a.warm()
    try:
        while True:
            try:
                text = input("you> ")
            except EOFError:
                break
            if not text.strip():
                break
            out.print("agent> ", end="")
            res: dict = {}
            streamed = ""
            for kind, data in a.ask_stream(text, thread=thread):
                if kind == "token":
                    streamed += data
                    out.print(data, end="", markup=False)
                else:
                    res = data
            out.print(remainder(streamed, res["reply"]), end="", markup=False)
            out.print()
            _show_answer({**res, "reply": ""})
    finally:
        a.close()


@app.command("serve")
def serve_cmd(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    backend: Backend = "auto",
    url: Url = None,
    memory: Memory = None,
):
    """OpenAI-compatible API: /v1/chat/completions (streaming and not), /v1/models, /healthz."""
    from ami_agent.server import serve

    a = agent(backend, url, memory)
    err.print("starting the decoder ...")
    a.warm()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: serving on {host}, reachable beyond this machine")
    err.print(f"serving on http://{host}:{port}/v1")
    try:
        serve(a, host, port)
    finally:
        a.close()


DEMO_TURNS = [
    "Red sits on blue. Yellow and orange are each on the table by themselves. I'd like blue on top of orange, but "
    "never put red on the table.",
    "Now put the red block on top of the blue block as well.",
    "What is on the blue block after step 4?",
    "Undo the last one.",
    "Also, do not use unstack.",
    "What is a world model, in one sentence?",
]


@app.command("demo")
def demo_cmd(backend: Backend = "auto", memory: Memory = None):
    """A scripted conversation through the real agent: a request in free words with a guardrail, a follow-up, a
    question about a state of the plan, an undo, a blocked goal, a general question."""
    import time
    import uuid

    a = agent(backend, None, memory)
    err.print("starting the decoder and the reader ...")
    t0 = time.perf_counter()
    a.warm()
    err.print(f"ready ({a.decoder.backend.name}, {time.perf_counter() - t0:.1f} s)")
    thread = f"demo-{uuid.uuid4().hex[:8]}"
    try:
        for text in DEMO_TURNS:
            out.print(f"\n[bold]you>[/bold] {text}")
            res = a.ask(text, thread=thread)
            out.print("[bold]agent>[/bold] ", end="")
            _show_answer(res)
    finally:
        a.close()
