"""`Agent`: perception, the latent planner and the decoder wired into a LangGraph state machine with SQLite memory.

perceive -> route -> plan -> guard -> decode -> verify -> respond, or perceive -> route -> chat -> respond (general
questions go to the base model without adapters), or perceive -> respond (a clarifying question). One thread per
conversation; a follow-up edits the thread's previous problem. Every answer carries a trace of its nodes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ami_agent.perceive import Reader, perceive
from ami_agent.record import PlanRecord
from ami_agent.state import AgentState
from planner.api import Constraint, Planner
from planner.search import SearchConfig
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.pddl import Domain, Problem, load_domain
from planner.worlds.plans import validate

WORLDS_DIR = Path(__file__).resolve().parent / "worlds"
CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
MAX_CHARS = 32_000
# Decode rounds: each round is one batched backend call; verify takes the first candidate, in order, whose actions
# equal the plan and validate. "sequential" spends the fewest tokens (latent, a sampled latent retry, then the
# latent+text fallback, one at a time); "parallel" spends the least time (the latent decode and its latent+text
# fallback share one batch, so a missed latent decode costs no extra round trip), the default for a chat assistant.
DECODE_ROUNDS = {
    "sequential": [[("latent", 0.0)], [("latent", 0.7)], [("latent+text", 0.0)]],
    "parallel": [[("latent", 0.0), ("latent+text", 0.0)], [("latent", 0.7), ("latent+text", 0.7)]],
}


@dataclass
class AgentConfig:
    backend: str = "auto"  # auto | vllm | transformers | vllm-server
    url: str | None = None  # vLLM server (backend vllm-server)
    memory: Path | None = None  # SQLite file; default <cache>/agent.sqlite
    model_dir: Path | None = None
    decoder_dir: Path | None = None
    # the planner's budget: expansions (the same compute alone or under load), and a wall-clock cap. 2500
    # expansions are ~10 s for a 4-5 block problem with the machine to itself; under load (8-16 requests at once)
    # a wall-clock budget alone starved searches that needed a few hundred expansions
    plan_expansions: int = 2500
    plan_seconds: float = 30.0
    chat_tokens: int = 256
    decode: str = "parallel"  # parallel | sequential (DECODE_ROUNDS)

    @property
    def budget(self) -> SearchConfig:
        return SearchConfig(time_limit=self.plan_seconds, max_expansions=self.plan_expansions)

    def __post_init__(self):
        if self.decode not in DECODE_ROUNDS:
            raise ValueError(f"decode policy {self.decode!r}: use one of {', '.join(DECODE_ROUNDS)}")


@dataclass
class World:
    name: str
    domain: Domain
    verbalizer: Verbalizer
    reader: Reader
    planner: Planner


def load_world(domain_path: Path, nl_path: Path, checkpoint: Path, budget: SearchConfig) -> World:
    d = load_domain(domain_path)
    return make_world(d, Verbalizer(d, NLConfig.load(nl_path)), checkpoint, budget)


def make_world(domain: Domain, verbalizer: Verbalizer, checkpoint: Path, budget: SearchConfig) -> World:
    if not Path(checkpoint).exists():
        raise FileNotFoundError(
            f"no world model for domain '{domain.name}' at {checkpoint}: train one with `ami-agent train world-model`"
        )
    planner = Planner.load(checkpoint, budget)
    return World(domain.name, domain, verbalizer, Reader(verbalizer), planner)


def _problem_facts(p: dict) -> tuple[set, set]:
    return {tuple(a) for a in p["init"]}, {tuple(a) for a in p["goal"]}


def _as_problem(world: World, prob: dict) -> Problem:
    """The state's problem (plain lists) as the simulator's Problem, for the decoder item and the validator."""
    init, goal = _problem_facts(prob)
    objects = {o: "object" for o in prob["objects"]}
    return Problem("request", world.domain.name, objects, frozenset(init), frozenset(goal))


@dataclass
class Agent:
    config: AgentConfig = field(default_factory=AgentConfig)
    # a serving backend the caller already runs (decoder.backends: e.g. a started vLLM engine), used instead of
    # starting one from `config.backend`; the caller closes it, not the agent
    backend: object = None

    def __post_init__(self):
        from decoder.base_model import cache_dir, resolve_base_model

        cfg = self.config
        self.world = load_world(  # the default world: chat, clarifying questions and free phrasing go here
            WORLDS_DIR / "blocksworld.pddl",
            WORLDS_DIR / "blocksworld.yaml",
            CHECKPOINTS / "blocksworld-4ops.pt",
            cfg.budget,
        )
        self.worlds: dict[str, World] = {self.world.name: self.world}
        self.model_dir = Path(resolve_base_model(str(cfg.model_dir) if cfg.model_dir else None))
        self._decoder = None
        self._decoder_lock = threading.Lock()
        self._reader_loaded = False
        self.plans: dict[str, object] = {}  # plan_id -> (PlanResult, DecodeItem): this process only
        self.memory_path = Path(cfg.memory or cache_dir() / "agent.sqlite")
        self.memory_path.parent.mkdir(parents=True, exist_ok=True)
        from langgraph.checkpoint.sqlite import SqliteSaver

        self._conn = sqlite3.connect(str(self.memory_path), check_same_thread=False)
        self.checkpointer = SqliteSaver(self._conn)
        self.graph = build_graph(self).compile(checkpointer=self.checkpointer)

    def add_world(self, domain: Domain, verbalizer: Verbalizer, checkpoint: Path | None = None) -> World:
        """Another world the agent reads, plans and speaks in (e.g. PlanBench's mystery blocksworld, read through
        its own English templates); its world model is checkpoint (default checkpoints/DOMAIN.pt). The decoder
        needs a projector for it (`ami-agent train decoder --world ...`)."""
        if domain.name not in self.worlds:
            ckpt = checkpoint or CHECKPOINTS / f"{domain.name}.pt"
            self.worlds[domain.name] = make_world(domain, verbalizer, ckpt, self.config.budget)
        return self.worlds[domain.name]

    def perceive(self, text: str, previous: dict | None) -> tuple[World, object]:
        """The world whose English reads text (the previous problem's world first), and its perception. The
        templates of every world are tried before the LoRA reader rewrites free phrasing for the default world."""
        first = self.worlds.get((previous or {}).get("world", ""), self.world)
        order = [first] + [w for w in self.worlds.values() if w is not first]
        fallback = None
        for w in order:
            p = perceive(text, w.reader, previous if w is first else None)
            if p.kind in ("problem", "followup"):
                return w, p
            fallback = fallback or (w, p)
        if self.has_reader and first is self.world:
            return first, perceive(text, first.reader, previous, self.rewrite)
        return fallback

    # ---- services ----------------------------------------------------------------------------------------------
    @property
    def decoder(self):
        with self._decoder_lock:
            if self._decoder is None:
                from decoder.api import DEFAULT_DIR, Decoder
                from decoder.backends import make_backend

                backend = self.backend or make_backend(self.config.backend, self.model_dir, self.config.url)
                self._decoder = Decoder(backend, self.model_dir, self.config.decoder_dir or DEFAULT_DIR)
            return self._decoder

    def reader_backend(self):
        """(the serving backend with the LoRA reader adapter loaded, its tokenizer)."""
        from ami_agent.reader import ADAPTER, READER_DIR

        dec = self.decoder
        with self._decoder_lock:
            if not self._reader_loaded:
                dec.backend.add_adapter(ADAPTER, READER_DIR / "adapter")
                self._reader_loaded = True
        return dec.backend, dec.tokens.tok

    def rewrite(self, text: str) -> str:
        """Free phrasing -> the world's standard statement, with the LoRA reader adapter."""
        from ami_agent.reader import rewrite

        backend, tok = self.reader_backend()
        return rewrite(backend, tok, [text], vb=self.world.reader.vb)[0]

    @property
    def has_reader(self) -> bool:
        from ami_agent.reader import READER_DIR

        return (READER_DIR / "adapter" / "adapter_config.json").exists()

    def warm(self) -> None:
        """Start the decoder backend now rather than at the first answer."""
        _ = self.decoder

    def close(self) -> None:
        # (a backend handed in is its owner's to close)
        if self._decoder is not None and self.backend is None:
            self._decoder.backend.close()
        self._conn.close()

    # ---- one turn ----------------------------------------------------------------------------------------------
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
        Planning answers arrive whole in "done": they are shown only after verification."""
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
            },
        )

    def rebuild_problem(self, history: list[dict]) -> dict | None:
        problem = None
        for m in history:
            if m.get("role") == "user" and isinstance(m.get("content"), str) and not check_text(m["content"]):
                w, p = self.perceive(m["content"], problem)
                if p.kind in ("problem", "followup"):
                    problem = problem_dict(w.name, p)
        return problem

    def thread_state(self, thread: str) -> dict:
        snap = self.graph.get_state({"configurable": {"thread_id": thread}})
        return dict(snap.values) if snap else {}


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


def problem_dict(world: str, p) -> dict:
    return {
        "world": world,
        "objects": list(p.objects),
        "init": sorted(list(a) for a in p.init),
        "goal": sorted(list(a) for a in p.goal),
        "constraints": [{"kind": c.kind, "target": list(c.target), "text": c.text} for c in p.constraints],
    }


# ---- the graph ---------------------------------------------------------------------------------------------------
def _timed(name: str, fn):
    def node(state: AgentState) -> dict:
        t0 = time.perf_counter()
        update = fn(state) or {}
        entry = {"node": name, "seconds": round(time.perf_counter() - t0, 4)}
        entry.update(update.pop("_trace", {}))
        update["trace"] = list(state.get("trace", [])) + [entry]
        return update

    return node


def build_graph(agent: Agent):
    from langgraph.graph import END, START, StateGraph

    def world_of(state: AgentState) -> World:
        return agent.worlds[state["problem"]["world"]]

    def n_perceive(state: AgentState) -> dict:
        text = state["text"]
        world, p = agent.perceive(text, state.get("problem"))
        base = {
            "messages": [{"role": "user", "content": text}],
            "plan": [],
            "plan_id": "",
            "reason": "",
            "expansions": 0,
            "energies": {},
            "decode_attempts": 0,
            "decode_mode": "",
            "decoded": [],
            "tokens_in": 0,
            "tokens_out": 0,
            "verified": False,
        }
        if p.kind == "chat":
            return {**base, "route": "chat", "status": "chat", "_trace": {"reader": "none"}}
        if p.kind == "clarify":
            return {
                **base,
                "route": "respond",
                "status": "clarify",
                "reply": p.question,
                "_trace": {"reader": p.reader},
            }
        prob = problem_dict(world.name, p)
        return {
            **base,
            "route": "plan",
            "problem": prob,
            "status": "",
            "_trace": {"reader": p.reader, "kind": p.kind},
        }

    def n_plan(state: AgentState) -> dict:
        prob = state["problem"]
        world = world_of(state)
        init, goal = _problem_facts(prob)
        cons = [Constraint(c["kind"], tuple(c["target"]), c.get("text", "")) for c in prob["constraints"]]
        try:
            r = world.planner.plan(prob["objects"], init, goal, cons)
        except ValueError as e:
            return {"status": "no_plan", "reason": str(e), "_trace": {}}
        plan_id = uuid.uuid4().hex
        if r.status == "solved":
            from decoder.evaluate import decode_item

            p = _as_problem(world, prob)
            agent.plans[plan_id] = (r, decode_item(world.name, world.planner, world.verbalizer, p, r))
            if len(agent.plans) > 256:
                agent.plans.pop(next(iter(agent.plans)))
        return {
            "status": r.status,
            "reason": r.reason,
            "plan": r.labels,
            "plan_id": plan_id if r.status == "solved" else "",
            "expansions": r.expansions,
            "energies": r.energies,
            "_trace": {
                "expansions": r.expansions,
                "energies": r.energies,
                "status": r.status,
                "escalated": r.escalated,  # the beam spent its share; best-first search went on
                "escalated_by": r.escalated_by,  # what the beam ran out of: "time" or "expansions"
                "budget_spent": r.budget_spent,  # no plan because time or expansions ran out
            },
        }

    def n_guard(state: AgentState) -> dict:
        """Audits the plan against every stated constraint on its predicted trajectory (the planner already
        searched under them as guardrail energies); names the constraint when it blocks the goal."""
        prob = state["problem"]
        if state["status"] != "solved":
            reason = state.get("reason", "")
            marker = "every plan breaks a guardrail:"
            said = [f'"{c.get("text") or c["kind"]}"' for c in prob["constraints"]]
            if marker in reason:
                blocking = reason.split(marker, 1)[1].strip()
                reply = f'I found no plan that keeps to what you asked: "{blocking}" blocks the goal.'
            else:
                reply = f"I found no plan for that goal ({reason})."
                if said:
                    reply += " Your constraints may be what blocks it: " + ", ".join(said) + "."
            return {"reply": reply, "_trace": {"blocked": marker in reason}}
        r, _ = agent.plans[state["plan_id"]]
        for c in prob["constraints"]:
            bad = _breaks(c, r)
            if bad:
                agent.plans.pop(state["plan_id"], None)
                return {
                    "status": "no_plan",
                    "reply": f"The only plan I found breaks your constraint "
                    f"'{c.get('text') or c['kind']}' ({bad}), so I will not give it.",
                    "_trace": {"broken": bad},
                }
        return {"_trace": {"constraints": len(prob["constraints"])}}

    rounds = DECODE_ROUNDS[agent.config.decode]

    def n_decode(state: AgentState) -> dict:
        from decoder.api import max_answer_tokens
        from decoder.backends import Sampling

        _, item = agent.plans[state["plan_id"]]
        attempt = state.get("decode_attempts", 0)
        modes = [m for m, _ in rounds[attempt]]
        temp = rounds[attempt][0][1]  # one temperature a round (one batched call)
        s = Sampling(max_tokens=max_answer_tokens([item]), temperature=temp, seed=attempt)
        outs = agent.decoder.decode_modes(item, modes, s)
        return {
            "decoded": [{"mode": m, "text": d.text} for m, d in zip(modes, outs)],
            "decode_attempts": attempt + 1,
            "tokens_in": state.get("tokens_in", 0) + sum(d.tokens_in for d in outs),
            "tokens_out": state.get("tokens_out", 0) + sum(d.tokens_out for d in outs),
            "_trace": {
                "modes": modes,
                "temperature": temp,
                "round": attempt + 1,
                "backend": agent.decoder.backend.name,
            },
        }

    def n_verify(state: AgentState) -> dict:
        from decoder.prompt import read_answer

        r, item = agent.plans[state["plan_id"]]
        prob = state["problem"]
        world = world_of(state)
        p = _as_problem(world, prob)
        want = [tuple(a) for a in r.actions]
        checks = []
        for cand in state["decoded"]:
            got = read_answer(world.verbalizer, cand["text"], prob["objects"])
            same = got == want
            valid = same and validate(world.domain, p, got).valid
            checks.append({"mode": cand["mode"], "equal_to_plan": same, "valid": bool(valid)})
            if valid:
                return {
                    "verified": True,
                    "decode_mode": cand["mode"],
                    "reply": cand["text"].strip(),
                    "_trace": {"candidates": checks, "chosen": cand["mode"]},
                }
        update = {"verified": False, "_trace": {"candidates": checks}}
        if state["decode_attempts"] >= len(rounds):
            update["status"] = "error"
            update["reply"] = (
                "I found a plan but could not put it into words faithfully, so I will not "
                "give an unverified answer. Please ask again."
            )
        return update

    def n_chat(state: AgentState) -> dict:
        from langgraph.config import get_stream_writer

        from decoder.backends import Request, Sampling

        msgs = [m for m in (state.get("messages") or []) if m.get("role") in ("user", "assistant")][-8:]
        dec = agent.decoder
        tok = dec.tokens.tok
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)
        ids = list(ids["input_ids"][-1500:])
        writer = get_stream_writer()
        pieces = []
        for piece in dec.backend.stream(
            Request(prompt_ids=ids), None, Sampling(max_tokens=agent.config.chat_tokens)
        ):
            pieces.append(piece)
            writer({"token": piece})
        text = "".join(pieces)
        return {
            "reply": text.strip(),
            "status": "chat",
            "tokens_in": len(ids),
            "tokens_out": len(tok(text, add_special_tokens=False)["input_ids"]),
            "_trace": {"backend": dec.backend.name},
        }

    def n_respond(state: AgentState) -> dict:
        seconds = time.perf_counter() - state.get("turn_started", time.perf_counter())
        status = state.get("status") or "error"
        record = None
        if status in ("solved", "no_plan", "clarify", "error") and state.get("route") == "plan":
            record = PlanRecord(
                "request",
                "ami",
                status,
                list(state.get("plan") or []) if status == "solved" else [],
                state.get("reason", "") if status != "solved" else "",
                seconds,
                state.get("tokens_in", 0),
                state.get("tokens_out", 0),
                state.get("expansions", 0),
                state.get("energies") or {},
            ).to_dict()
        elif status == "clarify":
            record = PlanRecord(
                "request", "ami", "clarify", reason=state.get("reply", ""), seconds=seconds
            ).to_dict()
        return {"plan_record": record, "messages": [{"role": "assistant", "content": state.get("reply", "")}]}

    g = StateGraph(AgentState)
    for name, fn in (
        ("perceive", n_perceive),
        ("plan", n_plan),
        ("guard", n_guard),
        ("decode", n_decode),
        ("verify", n_verify),
        ("chat", n_chat),
        ("respond", n_respond),
    ):
        g.add_node(name, _timed(name, fn))
    g.add_edge(START, "perceive")
    g.add_conditional_edges(
        "perceive", lambda s: s["route"], {"plan": "plan", "chat": "chat", "respond": "respond"}
    )
    g.add_edge("plan", "guard")
    g.add_conditional_edges(
        "guard",
        lambda s: "decode" if s["status"] == "solved" else "respond",
        {"decode": "decode", "respond": "respond"},
    )
    g.add_edge("decode", "verify")
    g.add_conditional_edges(
        "verify",
        lambda s: "respond" if s.get("verified") or s.get("status") == "error" else "decode",
        {"respond": "respond", "decode": "decode"},
    )
    g.add_edge("chat", "respond")
    g.add_edge("respond", END)
    return g


def _breaks(c: dict, r) -> str:
    """The first step of the plan's predicted trajectory that breaks constraint c, or ''."""
    kind, target = c["kind"], tuple(c["target"])
    for i, a in enumerate(r.actions, start=1):
        if kind == "forbid_operator" and a[0] == target[0]:
            return f"step {i} uses {a[0]}"
        if kind == "forbid_object" and target[0] in a[1:]:
            return f"step {i} moves {target[0]}"
    for i, facts in enumerate(r.predicted_facts):
        if kind == "forbid_fact" and target in facts:
            return f"after step {i} ({' '.join(target)}) would hold"
        if kind == "require_fact" and target not in facts:
            return f"after step {i} ({' '.join(target)}) would not hold"
    return ""
