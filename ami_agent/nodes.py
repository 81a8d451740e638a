"""The agent's nodes: module-level functions from the graph's state to an update, each given the services it
needs (ami_agent/services.py). Side effects (planning, decoding) live in the modules the nodes call.

perceive -> plan -> guard -> decode -> verify -> respond for a planning request; perceive -> describe -> respond
for a question about the thread's plan's states ("what is on red after step 2?"); perceive -> chat -> respond for
anything else; perceive -> respond for a clarifying question. The answer is checked by the world model (the
planner's plan passed a fresh ensemble's rollout) and by reading the text back equal to the plan; a state in words
by reading it back equal to the facts the world model's read-out finds in the same latent state: the symbolic
simulator takes no part in answering.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from langgraph.config import get_stream_writer

from ami_agent.perceive import Perception, summary
from ami_agent.questions import StateQuestion, answer, state_question, step_of, when_phrase
from ami_agent.services import Services, World
from ami_agent.state import AgentState, Plan, Problem
from decoder.api import DecodeItem, Described, StateItem, max_answer_tokens
from decoder.backends import Request, Sampling
from planner.constraints import Constraint
from planner.record import PlanRecord

# Decode rounds, each the latent decode and, only when its text does not read back as the plan, its latent+text
# fallback (the decoder writes a greedy answer's lines in parallel rounds, so a second answer in the same batch
# is no longer free): greedy with the objects' first codes, then greedy with codes
# drawn at random from the whole codebook (the codes are arbitrary and trained as random draws: another draw is
# another chance at copying them right), then sampled with another draw; verify takes the first candidate, in
# order, that reads back as the plan. Per round: (temperature, seed of the code draw or None).
DECODE_MODES = ["latent", "latent+text"]
DECODE_ROUNDS = [(0.0, None), (0.0, 1), (0.7, 2)]
BLOCKED = "every plan breaks a guardrail:"  # planner.search's reason when the constraints block the goal
UNDO_DEPTH = 8  # earlier versions of a thread's problem kept for "undo the last one"


def _world(state: AgentState, services: Services) -> World:
    return services.worlds[state["problem"]["world"]]


def _facts(rows) -> set[tuple[str, ...]]:
    return {tuple(a) for a in rows}


def _constraints(problem: Problem) -> list[Constraint]:
    return [Constraint.from_dict(c) for c in problem.get("constraints", [])]


def problem_of(world: World, p: Perception) -> Problem:
    """A perceived problem as the state keeps it (plain lists, sorted: the same text gives the same state)."""
    return {
        "world": world.name,
        "objects": list(p.objects),
        "init": sorted(list(a) for a in p.init),
        "goal": sorted(list(a) for a in p.goal),
        "constraints": [c.to_dict() for c in p.constraints],
    }


def _history(previous: Problem | None, depth: int = UNDO_DEPTH) -> Problem | None:
    """The problem with at most `depth` earlier versions behind it (what "undo" returns to)."""
    if not previous or depth <= 0:
        return None
    return {**previous, "before": _history(previous.get("before"), depth - 1)}


def perceive(state: AgentState, services: Services) -> dict:
    text = state["text"]
    previous = state.get("problem")
    base = {
        "messages": [{"role": "user", "content": text}],
        "decode_attempts": 0,
        "decode_mode": "",
        "decoded": [],
        "tokens_in": 0,
        "tokens_out": 0,
        "verified": False,
        "reply": "",
        "end_state": None,
    }
    asked = state_asked(state, services)
    if asked is not None:
        return {
            **base,
            "route": "describe",
            "question": asked,
            "_trace": {"reader": "state question", **asked},
        }
    world, p = services.perceive(text, previous)
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
    problem = problem_of(world, p)
    if p.kind == "followup":  # undo returns to the version before; an edit pushes the previous one
        restored = ((previous or {}).get("before") or {}).get("before")
        problem["before"] = restored if p.undo else _history(previous, UNDO_DEPTH - 1)
    return {
        **base,
        "route": "plan",
        "problem": problem,
        "plan": None,
        "status": "",
        "understood": summary(p.objects, p.init, p.goal, p.constraints, world.reader),
        "_trace": {"reader": p.reader, "kind": p.kind},
    }


def state_asked(state: AgentState, services: Services) -> dict | None:
    """A question about the thread's last plan's states, when there is a plan and the text is one."""
    prob, result = state.get("problem"), state.get("plan") or {}
    if not prob or result.get("status") != "solved":
        return None
    world = _world(state, services)
    # blocks by colour in the blocks world; elsewhere questions about the whole state
    colours = {o: world.reader.colour(o) for o in prob["objects"]} if world is services.world else {}
    q = state_question(state["text"], colours)
    return None if q is None else {"when": q.when, "kind": q.kind, "block": q.block}


def plan(state: AgentState, services: Services) -> dict:
    prob = state["problem"]
    world = _world(state, services)
    init = _facts(prob["init"])
    try:
        r = world.planner.plan(prob["objects"], init, _facts(prob["goal"]), _constraints(prob))
    except ValueError as e:  # a constraint on a fact the world cannot express
        return {"status": "no_plan", "plan": {"status": "no_plan", "reason": str(e)}, "_trace": {}}
    found_at = time.time()
    if state.get("understood"):  # what was read, sent as soon as the search is done: the answer's first line
        get_stream_writer()({"token": state["understood"] + "\n"})
    result: Plan = {
        "status": r.status,
        "reason": r.reason,
        "actions": [list(a) for a in r.actions],
        "labels": r.labels,
        "seeds": list(r.seeds),
        "predicted": [sorted(list(a) for a in facts) for facts in r.predicted_facts],
        "energies": r.energies,
        "expansions": r.expansions,
        "escalated": r.escalated,
        "escalated_by": r.escalated_by,
        "budget_spent": r.budget_spent,
        "energy_trace": (
            world.planner.energy_trace(prob["objects"], init, _facts(prob["goal"]), r.actions, r.seeds)
            if r.status == "solved"
            else {}
        ),
    }
    trace = {
        k: result[k]
        for k in ("status", "expansions", "energies", "escalated", "escalated_by", "budget_spent")
    }
    # wall clock: when the plan was found (the page times its first token against it)
    trace["found_at"] = round(found_at, 3)
    return {"status": r.status, "plan": result, "_trace": trace}


def guard(state: AgentState) -> dict:
    """Audits the plan against every stated constraint on the world model's predicted states (the planner
    searched under them as guardrail energies and checked them again in its own rollout); names the constraint
    when it blocks the goal."""
    prob, result = state["problem"], state["plan"]
    constraints = _constraints(prob)
    if state["status"] != "solved":
        reason = result.get("reason", "")
        if BLOCKED in reason:
            blocking = reason.split(BLOCKED, 1)[1].strip()
            reply = f'I found no plan that keeps to what you asked: "{blocking}" blocks the goal.'
        else:
            reply = f"I found no plan for that goal ({reason})."
            if constraints:
                said = ", ".join(f'"{c.describe()}"' for c in constraints)
                reply += f" Your constraints may be what blocks it: {said}."
        return {"reply": reply, "_trace": {"blocked": BLOCKED in reason}}
    actions = [tuple(a) for a in result["actions"]]
    states = [_facts(s) for s in result["predicted"]]
    for c in constraints:
        where = c.first_break(actions, states)
        if where:
            return {
                "status": "no_plan",
                "reply": f"The only plan I found breaks your constraint '{c.describe()}' at {where}, so I will "
                "not give it.",
                "_trace": {"broken": where},
            }
    return {"_trace": {"constraints": len(constraints)}}


def decode_item(state: AgentState, services: Services) -> DecodeItem:
    """The decoder's input for the thread's plan, its latent trajectory computed again from the plan's facts,
    actions and identity draws (what the search returned, bit for bit)."""
    prob, result = state["problem"], state["plan"]
    world = _world(state, services)
    init = _facts(prob["init"])
    actions = [tuple(a) for a in result["actions"]]
    trajectory, identities = world.planner.latent_plan(prob["objects"], init, actions, result["seeds"])
    return DecodeItem.from_latents(
        world.name,
        world.verbalizer,
        world.planner.model,
        prob["objects"],
        init,
        _facts(prob["goal"]),
        actions,
        trajectory,
        identities,
    )


def describe_state(services: Services, item: DecodeItem, t: int, predicted) -> tuple[Described, bool]:
    """The plan's state before it (t = 0) or after step t in words, and whether it reads back as the facts the
    world model's read-out finds in the same latent state (`predicted`); a second try with codes drawn at random
    when the first does not."""
    decoder = services.decoder
    wanted = _facts(predicted)
    d = decoder.describe([StateItem.at(item, t)])[0]
    if d.facts != wanted or d.unread:
        d = decoder.describe([StateItem.at(decoder.with_codes(item, 1), t)])[0]
    return d, d.facts == wanted and not d.unread


def decode(state: AgentState, services: Services) -> dict:
    item = decode_item(state, services)
    attempt = state.get("decode_attempts", 0)
    modes = DECODE_MODES
    temp, draw = DECODE_ROUNDS[attempt]
    decoder = services.decoder
    end = None
    # the end state in words, while the plan is written; not for problems larger than the decoder trained on,
    # whose descriptions seldom read back and would hold the reply back (two tries of a long description)
    if attempt == 0 and decoder.describes_well(item.world, len(item.objects)):
        predicted = state["plan"]["predicted"][-1]
        end = _POOL.submit(describe_state, services, item, item.plan.steps, predicted)
    if draw is not None:
        item = decoder.with_codes(item, draw)
    s = Sampling(max_tokens=max_answer_tokens([item]), temperature=temp, seed=attempt)
    outs = decoder.decode_modes(item, modes[:1], s)
    if not outs[0].faithful:
        outs += decoder.decode_modes(item, modes[1:], s)
    update, tokens_in, tokens_out = {}, sum(o.tokens_in for o in outs), sum(o.tokens_out for o in outs)
    if end is not None:
        said, ok = end.result()
        update["end_state"] = {"text": said.text, "equal_to_prediction": ok}
        tokens_in, tokens_out = tokens_in + said.tokens_in, tokens_out + said.tokens_out
    return {
        **update,
        # each candidate read back (`Decoder` compares the actions its text says with the plan's)
        "decoded": [{"mode": m, "text": o.text, "equal_to_plan": o.faithful} for m, o in zip(modes, outs)],
        "decode_attempts": attempt + 1,
        "tokens_in": state.get("tokens_in", 0) + tokens_in,
        "tokens_out": state.get("tokens_out", 0) + tokens_out,
        "_trace": {
            "modes": modes[: len(outs)],
            "temperature": temp,
            "codes": "first" if draw is None else f"drawn (seed {draw})",
            "round": attempt + 1,
            "backend": decoder.backend.name,
        },
    }


def verify(state: AgentState) -> dict:
    """The first candidate whose text reads back as exactly the planner's plan (which the world model's own
    check accepted) is the answer; none after the last round: an error, never an unverified answer."""
    checks = [{"mode": c["mode"], "equal_to_plan": c["equal_to_plan"]} for c in state["decoded"]]
    end = state.get("end_state") or {}
    for cand in state["decoded"]:
        if cand["equal_to_plan"]:
            reply = cand["text"].strip()
            if end.get("equal_to_prediction"):  # said only when it reads back as the world model's end state
                reply += f"\nAt the end: {end['text']}"
            return {
                "verified": True,
                "decode_mode": cand["mode"],
                "reply": reply,
                "_trace": {
                    "candidates": checks,
                    "chosen": cand["mode"],
                    "end_state": bool(end.get("equal_to_prediction")),
                },
            }
    update = {"verified": False, "_trace": {"candidates": checks}}
    if state["decode_attempts"] >= len(DECODE_ROUNDS):
        update["status"] = "error"
        update["reply"] = (
            "I found a plan but could not put it into words faithfully, so I will not give an unverified "
            "answer. Please ask again."
        )
    return update


def describe(state: AgentState, services: Services) -> dict:
    """A question about a state of the thread's plan: the decoder says the world model's predicted state, read
    back against the world model's own read-out of it; the direct answer is picked from what it said."""
    q = state["question"]
    result = state["plan"]
    steps = len(result["actions"])
    t = step_of(q["when"], steps)
    if t is None:
        return {
            "status": "clarify",
            "reply": f"The plan has {steps} step{'s' if steps != 1 else ''}: ask about a step from 1 to {steps}, "
            "before the first step or at the end.",
            "_trace": {"step": q["when"]},
        }
    if not services.decoder.describes(_world(state, services).name):
        return {
            "status": "clarify",
            "reply": "I can put this world's plans into words but not yet its states: my decoder was not trained "
            "to describe them. The plan's steps above say where each thing goes.",
            "_trace": {"step": t},
        }
    item = decode_item(state, services)
    d, ok = describe_state(services, item, t, result["predicted"][t])
    trace = {"step": t, "equal_to_prediction": ok}
    if not ok:
        return {
            "status": "error",
            "reply": "I could not put that state into words faithfully (what I wrote does not read back as my "
            "world model's prediction), so I will not guess. Please ask again.",
            "_trace": trace,
        }
    world = _world(state, services)
    when = when_phrase(t, steps)
    direct = (
        answer(StateQuestion(**q), set(d.facts), lambda o: "the " + world.verbalizer.object_phrase(o))
        if q["kind"] != "describe"
        else ""
    )
    reply = (f"{when}: {direct}\n" if direct else "") + f"{when}, my world model predicts: {d.text}"
    return {
        "status": "state",
        "reply": reply,
        "tokens_in": d.tokens_in,
        "tokens_out": d.tokens_out,
        "_trace": trace,
    }


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="describe")


def chat(state: AgentState, services: Services) -> dict:
    """Anything that is not a planning request: the base model without adapters answers, streamed."""
    msgs = [m for m in (state.get("messages") or []) if m.get("role") in ("user", "assistant")][-8:]
    dec = services.decoder
    tok = dec.tokens.tok
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = list(ids["input_ids"][-1500:])
    writer = get_stream_writer()
    pieces = []
    for piece in dec.backend.stream(
        Request(prompt_ids=ids), None, Sampling(max_tokens=services.config.chat_tokens)
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


def plan_view(state: AgentState, services: Services, reply: str) -> dict:
    """What a page shows of a planning turn: the facts the world model predicted before the plan and after each
    step (its own read-out, not the simulator's), the steps in words, the rules kept, the energies along the plan,
    the status and the text exactly as the decoder wrote it."""
    prob, result = state["problem"], state.get("plan") or {}
    world = _world(state, services)
    vb = world.verbalizer
    actions = [tuple(a) for a in result.get("actions") or []]
    return {
        "world": world.name,
        "kind": "blocks" if world is services.world else "facts",
        "status": state.get("status", ""),
        "reason": result.get("reason", "") if state.get("status") != "solved" else "",
        "understood": state.get("understood", ""),
        "objects": prob["objects"],
        "names": {o: world.reader.colour(o) for o in prob["objects"]},
        "init": prob["init"],
        "goal": [vb.fact(tuple(a)) for a in prob["goal"]],
        "constraints": [Constraint.from_dict(c).describe() for c in prob.get("constraints", [])],
        "steps": [vb.action(a) for a in actions],
        "states": result.get("predicted") or [],
        "energies": result.get("energies") or {},
        "energy_trace": result.get("energy_trace") or {},
        "text": reply.removeprefix(state.get("understood", "")).strip(),
    }


def respond(state: AgentState, services: Services) -> dict:
    seconds = time.perf_counter() - state.get("turn_started", time.perf_counter())
    status = state.get("status") or "error"
    record = None
    if state.get("route") == "plan":
        result = state.get("plan") or {}
        record = PlanRecord(
            "request",
            "ami",
            status if status in ("solved", "no_plan", "error") else "error",
            list(result.get("labels") or []) if status == "solved" else [],
            result.get("reason", "") if status != "solved" else "",
            seconds,
            state.get("tokens_in", 0),
            state.get("tokens_out", 0),
            result.get("expansions", 0),
            result.get("energies") or {},
        ).to_dict()
    elif status == "clarify":
        record = PlanRecord(
            "request", "ami", "clarify", reason=state.get("reply", ""), seconds=seconds
        ).to_dict()
    reply = state.get("reply", "")
    message: dict = {"role": "assistant", "content": reply, "status": status}
    if state.get("route") == "plan":
        if state.get("understood"):
            reply = f"{state['understood']}\n{reply}"  # what was read first: a misreading shows at once
            message["content"] = reply
        message["view"] = plan_view(state, services, reply)
    return {"plan_record": record, "reply": reply, "messages": [message]}
