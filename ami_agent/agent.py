"""`Agent`: perception, the latent planner and the decoder wired into a LangGraph state machine (ami_agent/graph.py)
whose state is kept per conversation thread in SQLite. One call is one user turn; every answer carries a trace of
the nodes it went through."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from ami_agent.graph import build_graph
from ami_agent.nodes import problem_of
from ami_agent.services import AgentConfig, Services, World, on_own_thread, settle
from ami_agent.state import AgentState
from decoder.api import Decoder
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Domain

MAX_CHARS = 32_000


class Agent:
    def __init__(self, config: AgentConfig | None = None, backend=None):
        """backend: a serving backend the caller already runs (decoder.backends, e.g. a started vLLM engine), used
        instead of starting one from `config.backend`; the caller closes it, not the agent."""
        self.config = config or AgentConfig()
        self.backend = backend
        # the models load on a thread of their own, so that the caller's thread holds no OpenMP pool
        # (`on_own_thread`): the nodes run on LangGraph's threads
        self.services = on_own_thread(Services, self.config, backend)
        self.memory_path = self.services.memory_path
        self.memory_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.memory_path), check_same_thread=False)
        saver = SqliteSaver(self._conn)
        saver.setup()  # the tables now, not at the first checkpoint: listing threads of a new memory finds none
        self.graph = build_graph(self.services).compile(checkpointer=saver)
        settle()

    @property
    def world(self) -> World:
        return self.services.world

    @property
    def worlds(self) -> dict[str, World]:
        return self.services.worlds

    @property
    def decoder(self) -> Decoder:
        return self.services.decoder

    def add_world(self, domain: Domain, verbalizer: Verbalizer, checkpoint: Path | None = None) -> World:
        return on_own_thread(self.services.add_world, domain, verbalizer, checkpoint)

    def warm(self) -> None:
        """Start the decoder backend (and the reader's engine, when there is a reader) now rather than at the
        first answer."""
        on_own_thread(self._warm)

    def _warm(self) -> None:
        _ = self.services.decoder
        if self.services.has_reader:
            self.services.reader_backend()

    def close(self) -> None:
        self.services.close()
        self._conn.close()

    def ask(self, text: str, thread: str | None = None, history: list[dict] | None = None) -> dict:
        """One user turn -> {"reply", "status", "plan_record" (planning turns), "trace", "thread"}.

        thread: the conversation's id (its state lives in SQLite). history: earlier messages of a stateless
        client (OpenAI style) whose problem is rebuilt from its user turns when no thread is given."""
        result: dict = {}
        for kind, data in self.ask_stream(text, thread, history):
            if kind == "done":
                result = data
        return result

    def ask_stream(self, text: str, thread: str | None = None, history: list[dict] | None = None):
        """Like `ask`, as events: ("token", text) while a chat answer is generated, then ("done", result).
        A planning answer streams its first line (what was understood) as soon as the plan is found; the rest
        arrives in "done", once verified (`remainder` gives what was not streamed)."""
        thread = thread or f"t-{uuid.uuid4().hex[:12]}"

        def failed(reply: str) -> dict:
            return {"reply": reply, "status": "error", "trace": [], "thread": thread, "plan_record": None}

        problem_error = check_text(text)
        if problem_error:
            yield "done", failed(problem_error)
            return
        cfg = {"configurable": {"thread_id": thread}}
        start: AgentState = {"text": text, "trace": [], "turn_started": time.perf_counter()}
        if history:
            start["problem"] = self.rebuild_problem(history)
        out: dict = {}
        try:
            for mode, chunk in self.graph.stream(start, cfg, stream_mode=["custom", "values"]):
                if mode == "custom" and "token" in chunk:
                    yield "token", chunk["token"]
                elif mode == "values":
                    out = chunk
        except Exception as e:  # a failure inside a node: reported, the thread stays usable
            yield "done", failed(f"Something went wrong while answering: {type(e).__name__}: {e}")
            return
        yield (
            "done",
            {
                "reply": out.get("reply", ""),
                "status": out.get("status", "error"),
                "plan_record": out.get("plan_record"),
                "trace": out.get("trace", []),
                "thread": thread,
                "view": ((out.get("messages") or [{}])[-1]).get("view")
                if out.get("route") == "plan"
                else None,
            },
        )

    def rebuild_problem(self, history: list[dict]) -> dict | None:
        problem = None
        for m in history:
            if m.get("role") == "user" and isinstance(m.get("content"), str) and not check_text(m["content"]):
                w, p = self.services.perceive(m["content"], problem)
                if p.kind in ("problem", "followup"):
                    problem = problem_of(w, p)
        return problem

    def thread_state(self, thread: str) -> dict:
        snap = self.graph.get_state({"configurable": {"thread_id": thread}})
        return dict(snap.values) if snap else {}

    def threads(self) -> list[dict]:
        """Every thread in the SQLite memory, most recent first: {"thread", "title" (its first message), "turns"}."""
        rows = self._conn.execute(
            "SELECT thread_id, MAX(rowid) FROM checkpoints GROUP BY thread_id ORDER BY MAX(rowid) DESC"
        ).fetchall()
        out = []
        for thread, _ in rows:
            messages = self.thread_state(thread).get("messages") or []
            first = next((m["content"] for m in messages if m.get("role") == "user"), "")
            out.append({"thread": thread, "title": " ".join(first.split())[:80], "turns": len(messages) // 2})
        return out

    def delete_thread(self, thread: str) -> bool:
        """Forget a thread (its every checkpoint); False when there was none."""
        if not self.thread_state(thread):
            return False
        self.graph.checkpointer.delete_thread(thread)
        return True


def remainder(streamed: str, reply: str) -> str:
    """What of the final reply was not streamed already (the streamed part is its beginning)."""
    return reply[len(streamed) :] if reply.startswith(streamed) else reply


def check_text(text) -> str:
    """Bad input -> the message to answer with, or ''."""
    if not isinstance(text, str):
        return "The message must be text."
    if not text.strip():
        return "The message is empty: ask me something, or describe blocks and a goal."
    if len(text) > MAX_CHARS:
        return f"The message is too long ({len(text)} characters; at most {MAX_CHARS}). Shorten it."
    if "\x00" in text or sum(1 for c in text if ord(c) < 32 and c not in "\n\r\t") > 8:
        return "The message looks like binary data, not text."
    return ""
