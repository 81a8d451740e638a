"""The agent's graph: wiring only (ami_agent/nodes.py holds what each step does)."""

from __future__ import annotations

import time
from functools import partial

from langgraph.graph import END, START, StateGraph

from ami_agent import nodes
from ami_agent.services import Services
from ami_agent.state import AgentState


def timed(name: str, fn):
    """The node, with its seconds and what it reports (its update's "_trace") appended to the turn's trace."""

    def node(state: AgentState) -> dict:
        t0 = time.perf_counter()
        update = fn(state) or {}
        entry = {"node": name, "seconds": round(time.perf_counter() - t0, 4)}
        entry.update(update.pop("_trace", {}))
        update["trace"] = list(state.get("trace", [])) + [entry]
        return update

    return node


def build_graph(services: Services) -> StateGraph:
    g = StateGraph(AgentState)
    for name, fn in (
        ("perceive", partial(nodes.perceive, services=services)),
        ("plan", partial(nodes.plan, services=services)),
        ("guard", nodes.guard),
        ("decode", partial(nodes.decode, services=services)),
        ("verify", nodes.verify),
        ("describe", partial(nodes.describe, services=services)),
        ("chat", partial(nodes.chat, services=services)),
        ("respond", partial(nodes.respond, services=services)),
    ):
        g.add_node(name, timed(name, fn))
    g.add_edge(START, "perceive")
    g.add_conditional_edges(
        "perceive",
        lambda s: s["route"],
        {"plan": "plan", "describe": "describe", "chat": "chat", "respond": "respond"},
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
    g.add_edge("describe", "respond")
    g.add_edge("respond", END)
    return g
