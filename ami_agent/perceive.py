"""Perception: user text -> a planning problem (objects, initial facts, goal facts), the constraints the user states,
or a follow-up that edits the previous problem. Parsed problems are checked; what cannot be a state becomes a
clarifying question instead of a guess.

Readers, in order: the world's own phrasing (PlanBench's "As initial conditions I have that, ... My goal is to
have that ..."), then short English patterns for goals, follow-ups and constraints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ami_agent.reader import complete_state
from planner.constraints import Constraint
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.errors import WorldError
from planner.worlds.nl import Verbalizer, split_and

Atom = tuple[str, ...]


@dataclass
class Perception:
    kind: str  # problem | followup | chat | clarify
    objects: list[str] = field(default_factory=list)
    init: set[Atom] = field(default_factory=set)
    goal: set[Atom] = field(default_factory=set)
    constraints: list[Constraint] = field(default_factory=list)
    question: str = ""  # for clarify
    reader: str = ""  # which reader understood the text


_STATEMENT = re.compile(r"as initial conditions i have that", re.IGNORECASE)
_NEG = r"(?:never|don'?t|do\s+not|must\s+not|mustn'?t|shouldn'?t|should\s+not|without|avoid)"
_PLANNING_WORDS = re.compile(
    r"\b(block|blocks|stack|unstack|tower|pick up|put down|on top of|on the table|my goal|goal is|plan)\b",
    re.IGNORECASE,
)


def _said(m: re.Match) -> str:
    """The words of a stated constraint ("never put the red block on the table"), quoted back when it blocks."""
    return " ".join(m.group(0).split())


class Reader:
    """Reads one world's text. `names`: every object the world's English knows (PDDL name -> phrase)."""

    def __init__(self, verbalizer: Verbalizer):
        self.vb = verbalizer
        self.names = dict(verbalizer.config.encoded_objects)
        self.all_objects = sorted(self.names)
        table = verbalizer.object_reader(self.all_objects)
        self.phrase_to_object = table
        alt = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
        self.obj_re = rf"(?:the\s+)?({alt})(?:\s+block)?"

    # ---- helpers -------------------------------------------------------------------------------------------------
    def obj(self, phrase: str) -> str:
        return self.phrase_to_object[" ".join(phrase.lower().split())]

    def unknown_objects(self, text: str) -> list[str]:
        """'the purple block' when no purple block exists in this world."""
        seen = []
        for m in re.finditer(r"\bthe\s+([a-z]+)\s+block\b", text, re.IGNORECASE):
            word = m.group(1).lower()
            if f"{word} block" not in self.phrase_to_object and word not in self.phrase_to_object:
                if word not in ("same", "other", "top", "bottom", "first", "second", "last", "next", "one"):
                    seen.append(m.group(0))
        return seen

    # ---- the world's own phrasing ----------------------------------------------------------------------------
    def statement(self, text: str) -> tuple[set[Atom], set[Atom]]:
        init, goal = self.vb.read_statement(text, self.all_objects)
        return set(init), set(goal)

    # ---- short patterns ------------------------------------------------------------------------------------------
    def goal_phrases(self, text: str) -> set[Atom]:
        """'put/stack/place the A (block) on (top of) the B', 'the A should be on the B', 'the A on the table'.
        Phrases under a negation ('never put ...') are constraints, not goals."""
        o = self.obj_re
        goals: set[Atom] = set()
        verbs = r"(?:put|stack|place|move|set|have|get|want)"
        patterns = [
            (rf"{verbs}\s+{o}\s+(?:on\s+top\s+of|onto|on|atop)\s+{o}", "on"),
            (rf"{o}\s+(?:should|must|needs? to|has to)\s+be\s+on\s+(?:top\s+of\s+)?{o}", "on"),
            (rf"{verbs}\s+{o}\s+(?:on|onto)\s+the\s+table", "ontable"),
        ]
        for pat, pred in patterns:
            for m in re.finditer(pat, text, re.IGNORECASE):
                if re.search(
                    rf"{_NEG}\s+(?:ever\s+)?\w*\s*$", text[max(0, m.start() - 24) : m.start()], re.I
                ):
                    continue
                goals.add((pred, *(self.obj(g) for g in m.groups())))
        return goals

    def constraints(self, text: str) -> list[Constraint]:
        o = self.obj_re
        out: list[Constraint] = []
        neg = _NEG
        for sentence in re.split(r"(?<=[.!?;])\s+|\n", text):
            s = sentence.strip()
            if not s:
                continue
            for m in re.finditer(
                rf"{neg}\s+(?:ever\s+)?(?:put|place|set|leave|stack)\w*\s+{o}\s+on\s+the\s+table", s, re.I
            ):
                out.append(Constraint("forbid_fact", ("ontable", self.obj(m.group(1))), _said(m)))
            for m in re.finditer(
                rf"{neg}\s+(?:ever\s+)?(?:put|place|set|stack)\w*\s+{o}\s+(?:on\s+top\s+of|onto|on)\s+{o}",
                s,
                re.I,
            ):
                out.append(
                    Constraint("forbid_fact", ("on", self.obj(m.group(1)), self.obj(m.group(2))), _said(m))
                )
            for m in re.finditer(
                rf"{neg}\s+(?:ever\s+)?(?:touch|move|use|pick\s+up|handle)\w*\s+{o}", s, re.I
            ):
                out.append(Constraint("forbid_object", (self.obj(m.group(1)),), _said(m)))
            for m in re.finditer(rf"{neg}\s+(?:ever\s+)?(?:hold|grab)\w*\s+{o}", s, re.I):
                out.append(Constraint("forbid_fact", ("holding", self.obj(m.group(1))), _said(m)))
            for m in re.finditer(
                rf"{neg}\s+(?:use\s+)?(?:the\s+)?(unstack|stack|pick[- ]up|put[- ]down)\b(?!\s+{o})", s, re.I
            ):
                op = m.group(1).lower().replace(" ", "-")
                out.append(Constraint("forbid_operator", (op,), _said(m)))
            for m in re.finditer(rf"(?:keep|leave)\s+{o}\s+on\s+(?:top\s+of\s+)?{o}", s, re.I):
                out.append(
                    Constraint("require_fact", ("on", self.obj(m.group(1)), self.obj(m.group(2))), _said(m))
                )
            for m in re.finditer(rf"(?:keep|leave)\s+{o}\s+on\s+the\s+table", s, re.I):
                out.append(Constraint("require_fact", ("ontable", self.obj(m.group(1))), _said(m)))
        unique: dict[tuple, Constraint] = {}
        for c in out:
            unique.setdefault((c.kind, c.target), c)
        return list(unique.values())

    def facts_phrase(self, text: str) -> set[Atom]:
        """Facts said in the world's phrasing inside free text ('the red block is on top of the blue block')."""
        out: set[Atom] = set()
        for clause in split_and(text):
            try:
                out.add(self.vb.read_fact(clause, self.all_objects))
            except WorldError:
                continue
        return out


def state_problems(init: set[Atom], objects: list[str], reader: Reader) -> list[str]:
    """What makes a blocksworld-like set of facts impossible: a block on two blocks, two blocks on one, a cycle,
    holding while the hand is empty, a block both on the table and on another."""
    name = reader.vb.object_phrase
    issues = []
    on = [a for a in init if a[0] == "on"]
    below: dict[str, list[str]] = {}
    above: dict[str, list[str]] = {}
    for _, x, y in on:
        below.setdefault(x, []).append(y)
        above.setdefault(y, []).append(x)
    for x, ys in below.items():
        if len(ys) > 1:
            issues.append(
                f"the {name(x)} cannot be on both " + " and ".join(f"the {name(y)}" for y in sorted(ys))
            )
        if ("ontable", x) in init:
            issues.append(f"the {name(x)} cannot be on the table and on the {name(ys[0])} at once")
    for y, xs in above.items():
        if len(xs) > 1:
            issues.append(
                f"only one block fits on the {name(y)}, but "
                + " and ".join(f"the {name(x)}" for x in sorted(xs))
                + " are said to be on it"
            )
        if ("clear", y) in init:
            issues.append(f"the {name(y)} is said to be clear but the {name(xs[0])} is on it")
    for start in below:
        seen, x = {start}, start
        while x in below and len(below[x]) == 1:
            x = below[x][0]
            if x in seen:
                issues.append(f"the blocks stand in a circle (the {name(start)} ends up under itself)")
                break
            seen.add(x)
        if issues and issues[-1].startswith("the blocks stand in a circle"):
            break
    held = [a[1] for a in init if a[0] == "holding"]
    if held and ("handempty",) in init:
        issues.append(f"the hand cannot be empty while holding the {name(held[0])}")
    if len(held) > 1:
        issues.append("the hand holds one block at a time")
    return issues


def goal_problems(goal: set[Atom], objects: list[str], reader: Reader) -> list[str]:
    return [i.replace("is said to be clear", "must be clear") for i in state_problems(goal, objects, reader)]


def looks_like_planning(text: str) -> bool:
    return bool(_STATEMENT.search(text) or _PLANNING_WORDS.search(text))


def perceive(text: str, reader: Reader, previous: dict | None, read_free=None) -> Perception:
    """previous: the thread's last problem ({"objects", "init", "goal", "constraints"}) or None. read_free: free
    text -> (start facts, goal facts) or None (the LoRA reader), tried when the templates do not understand."""
    if _STATEMENT.search(text):
        try:
            init, goal = reader.statement(text)
        except WorldError as e:
            p = _read_free(text, reader, read_free) if read_free is not None else None
            if p is not None:
                return p
            return Perception(
                "clarify",
                question=f"I could not read that problem: {e}. "
                "Describe it as 'As initial conditions I have that, ... My goal is to have that ...'.",
            )
        objects = sorted({o for a in init | goal for o in a[1:]})
        p = Perception(
            "problem", objects, init, goal, reader.constraints(_after_statement(text)), reader="templates"
        )
        return _checked(p, reader, text)
    unknown = reader.unknown_objects(text)
    goals = reader.goal_phrases(text)
    cons = reader.constraints(text)
    if previous and (goals or cons) and not unknown:
        p = Perception(
            "followup",
            list(previous["objects"]),
            {tuple(a) for a in previous["init"]},
            _edit_goal({tuple(a) for a in previous["goal"]}, goals),
            [
                Constraint(c["kind"], tuple(c["target"]), c.get("text", ""))
                for c in previous.get("constraints", [])
            ]
            + cons,
            reader="patterns",
        )
        return _checked(p, reader, text)
    if unknown:
        known = ", ".join(f"the {reader.names[o]}" for o in reader.all_objects)
        return Perception("clarify", question=f"I don't know {unknown[0]}. The blocks I know are {known}.")
    if looks_like_planning(text) and read_free is not None and not (previous and goals):
        p = _read_free(text, reader, read_free)
        if p is not None:
            return p
    if looks_like_planning(text):
        if goals and not previous:
            return Perception(
                "clarify",
                question="What does the table look like now? Tell me where each block is, e.g. 'As initial "
                "conditions I have that, the red block is clear, ... My goal is to have that ...'.",
            )
        return Perception(
            "clarify",
            question="I could not tell the blocks' positions and the goal from that. Say it as 'As initial "
            "conditions I have that, the red block is on the table, ... My goal is to have that the red block is "
            "on top of the blue block.'",
        )
    return Perception("chat")


def _read_free(text: str, reader: Reader, read_free) -> Perception | None:
    """The LoRA reader's facts, completed and checked; None when it read no start or no goal."""
    facts = read_free(text)
    if facts is None:
        return None
    init, goal = facts
    objects = sorted({o for a in init | goal for o in a[1:]})
    names = blocksworld_names(reader.vb.domain)
    if names:
        init = complete_state(init, objects, names)
    p = Perception("problem", objects, init, goal, reader.constraints(text), reader="adapter")
    return _checked(p, reader, text)


def _after_statement(text: str) -> str:
    """The text without its problem statements and example plans: constraints are read from the rest."""
    text = re.sub(r"\[PLAN\].*?(\[PLAN END\]|$)", " ", text, flags=re.IGNORECASE | re.DOTALL)
    return re.sub(
        r"as initial conditions i have that.*?my goal is to have that.*?\.(?=\s|$)",
        " ",
        text,
        flags=re.IGNORECASE | re.DOTALL,
    )


def _edit_goal(goal: set[Atom], new: set[Atom]) -> set[Atom]:
    """New 'on' goals replace old ones they contradict (same block elsewhere, or another block on the same one)."""
    out = set(goal)
    for g in new:
        if g[0] == "on":
            out = {h for h in out if not (h[0] == "on" and (h[1] == g[1] or h[2] == g[2]))}
            out.discard(("on", g[2], g[1]))
            out.discard(("ontable", g[1]))
        elif g[0] == "ontable":
            out = {h for h in out if not (h[0] == "on" and h[1] == g[1])}
        out.add(g)
    return out


def _checked(p: Perception, reader: Reader, text: str) -> Perception:
    if not p.goal:
        return Perception("clarify", question="What should the blocks look like in the end? I found no goal.")
    objects = set(p.objects)
    stray = sorted({o for a in p.goal for o in a[1:]} - objects)
    if stray:
        names = ", ".join(f"the {reader.names.get(o, o)}" for o in stray)
        return Perception(
            "clarify",
            question=f"The goal mentions {names}, which the initial conditions do not place. Where is it now?",
        )
    for c in p.constraints:
        if (
            not set(c.target[1:] if c.kind != "forbid_object" else c.target) <= objects
            and c.kind != "forbid_operator"
        ):
            return Perception(
                "clarify", question=f"The constraint '{c.describe()}' names a block that is not on the table."
            )
    issues = state_problems(p.init, p.objects, reader)
    if issues:
        return Perception(
            "clarify", question="That cannot be the current state: " + "; ".join(issues) + ". Which is it?"
        )
    issues = goal_problems(p.goal, p.objects, reader)
    if issues:
        return Perception("clarify", question="That goal cannot hold: " + "; ".join(issues) + ".")
    return p
