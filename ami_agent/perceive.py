"""Perception: user text -> a planning problem (objects, initial facts, goal facts), the constraints the user states,
or a follow-up that edits the previous problem. Parsed problems are checked; what is missing or cannot be a state
becomes a specific question (naming the block or the conflict) instead of a guess, so that `no_plan` is only ever
said of a complete, consistent problem whose goal no plan reaches.

Readers, in order: the world's own phrasing (PlanBench's "As initial conditions I have that, ... My goal is to
have that ..."), short English patterns for follow-ups in a thread ("now also put ...", "undo the last one",
"what if the hand holds red?", "and don't touch yellow"), then the reader adapter (ami_agent/reader.py) for
everything else, whose reading `understand` completes and checks.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ami_agent.reader import Reading, complete_state, rule_objects
from ami_agent.typed_reader import NEG as _NEG
from ami_agent.typed_reader import TypedReader, placement_problems
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
    undo: bool = False  # a follow-up that returns to the problem before the last edit


_STATEMENT = re.compile(r"as initial conditions i have that", re.IGNORECASE)
_ASK_FOR_PLAN = re.compile(
    r"what is the plan to achieve my goal\?( just give the actions in the plan\.)?", re.I
)
_RULE_WORDS = re.compile(r"\b(never|don'?t|do not|must not|mustn'?t|without|avoid|keep|leave|no)\b", re.I)
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
        # whole words only: a raw name ("t", block 20) is not the start of "the table"
        self.obj_re = rf"(?:the\s+)?(?<![\w-])({alt})(?![\w-])(?:\s+block)?"
        compact = verbalizer.config.compact_objects or {}
        # short names ("red"): what summaries say and what the reader adapter writes
        self.colours = {o: compact.get(o) or self.names[o].removesuffix(" block") for o in self.all_objects}
        self.typed = TypedReader(verbalizer) if verbalizer.numbered else None

    def colour(self, obj: str) -> str:
        return self.colours.get(obj, obj)

    def named_in(self, text: str) -> list[str]:
        """The objects a text names ("the red block", "red"), in order of first mention."""
        low = " " + " ".join(re.findall(r"[a-z0-9_-]+", text.lower())) + " "
        found: dict[str, int] = {}
        for phrase, o in list(self.phrase_to_object.items()) + [(c, o) for o, c in self.colours.items()]:
            at = low.find(f" {phrase.lower()} ")
            if at >= 0 and phrase.lower() != o:
                found[o] = min(at, found.get(o, at))
        return sorted(found, key=found.get)

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
        """In a world of numbered names (logistics' "truck_0"), the objects are the ones the text names, and the
        types their names imply are added to the initial state."""
        if not self.vb.numbered:
            init, goal = self.vb.read_statement(text, self.all_objects)
            return set(init), set(goal)
        init, goal = self.vb.read_statement(text, self.vb.objects_in(text))
        named = sorted({o for a in init | goal for o in a[1:]})
        return set(init) | self.vb.type_facts(named), set(goal)

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

    def constraints(self, text: str, init: set[Atom] | None = None) -> list[Constraint]:
        """The rules a text states. init: the problem's initial facts ("keep package_3 where it is" keeps them)."""
        if blocksworld_names(self.vb.domain) is None:
            return world_rules(text, self.vb, init or set())
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
            for m in re.finditer(rf"{neg}\s+(?:ever\s+)?(?:touch|move|use|handle)\w*\s+{o}", s, re.I):
                out.append(Constraint("forbid_object", (self.obj(m.group(1)),), _said(m)))
            # "don't pick up magenta": it may move, but never be in the hand
            for m in re.finditer(rf"{neg}\s+(?:ever\s+)?(?:hold|grab|pick\s+up|lift)\w*\s+{o}", s, re.I):
                out.append(Constraint("forbid_fact", ("holding", self.obj(m.group(1))), _said(m)))
            for m in re.finditer(
                rf"{neg}\s+(?:us(?:e|ing)\s+)?(?:the\s+)?(unstack|stack|pick[- ]up|put[- ]down)\b(?!\s+{o})",
                s,
                re.I,
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


_KEEP_PLACE = (
    r"(?:where\s+(?:it|they)\s+(?:is|are|was|were|stands?)|in\s+place|put|at\s+its\s+place|untouched)"
)


def world_rules(text: str, vb: Verbalizer, init: set[Atom]) -> list[Constraint]:
    """Rules in any world's terms, read with its action templates and object names: "do not use airplane_1"
    (no action on it), "never unload at location_1_0" (the actions whose template starts with that word, with
    that object), "don't fly" (the operator), "keep package_3 where it is" (its place in the initial state, at
    every step)."""
    objects = vb.objects_in(text) if vb.numbered else sorted(vb.config.encoded_objects)
    table = vb.object_reader(objects)
    if not table:
        return []
    alt = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
    o = rf"(?:the\s+)?(?<![\w-])({alt})(?![\w-])"
    verbs: dict[str, list[str]] = {}
    for op, tmpl in vb.config.actions.items():
        verbs.setdefault(tmpl.split()[0].lower(), []).append(op)
    verb = "|".join(re.escape(v) for v in sorted(verbs, key=len, reverse=True))
    static = vb.static
    out: list[Constraint] = []
    for sentence in re.split(r"(?<=[.!?;])\s+|\n", text):
        for m in re.finditer(
            rf"{_NEG}\s+(?:ever\s+)?(?:use|using|touch|touching|move|moving)\s+{o}", sentence, re.I
        ):
            out.append(Constraint("forbid_object", (table[m.group(1).lower()],), _said(m)))
        for m in re.finditer(rf"\bleave\s+{o}\s+alone\b", sentence, re.I):
            out.append(Constraint("forbid_object", (table[m.group(1).lower()],), _said(m)))
        for m in re.finditer(
            rf"{_NEG}\s+(?:ever\s+)?(?:use\s+)?(?:any\s+)?({verb})(?:s|es|ing)?\b((?:(?!\band\b|\bbut\b|,)[^.;!?])*)",
            sentence,
            re.I,
        ):
            named = [table[x.lower()] for x in re.findall(o, m.group(2), re.I)]
            for op in verbs[m.group(1).lower()]:
                out.append(Constraint("forbid_operator", (op, *named), _said(m)))
        for m in re.finditer(
            rf"(?:keep|leave)\s+{o}\s+{_KEEP_PLACE}|{o}\s+(?:must|should|has\s+to|needs?\s+to)\s+stay\s+{_KEEP_PLACE}",
            sentence,
            re.I,
        ):
            x = table[(m.group(1) or m.group(2)).lower()]
            for f in sorted(init):
                if f[0] not in static and len(f) > 1 and f[1] == x:
                    out.append(Constraint("require_fact", f, _said(m)))
    unique: dict[tuple, Constraint] = {}
    for c in out:
        unique.setdefault((c.kind, c.target), c)
    return list(unique.values())


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
    for start in sorted(below):
        path, x = [start], start
        while x in below and len(below[x]) == 1:
            x = below[x][0]
            if x in path:  # a circle: name every block in it, each on the next
                loop = path[path.index(x) :] + [x]
                issues.append(
                    "the blocks stand in a circle: "
                    + _and([f"the {name(a)} on the {name(b)}" for a, b in zip(loop, loop[1:])])
                )
                break
            path.append(x)
        if issues and issues[-1].startswith("the blocks stand in a circle"):
            break
    held = [a[1] for a in init if a[0] == "holding"]
    if held and ("handempty",) in init:
        issues.append(f"the hand cannot be empty while holding the {name(held[0])}")
    if len(held) > 1:
        issues.append("the hand holds one block at a time")
    for x in held:
        if x in below or ("ontable", x) in init:
            where = f"on the {name(below[x][0])}" if x in below else "on the table"
            issues.append(f"the {name(x)} cannot be in the hand and {where} at once")
    return issues


def rule_problems(constraints: list[Constraint]) -> list[str]:
    """Rules that contradict each other: keeping a fact that another rule forbids."""
    kept = {c.target: c for c in constraints if c.kind == "require_fact"}
    return [
        f'"{kept[c.target].describe()}" and "{c.describe()}" cannot both hold'
        for c in constraints
        if c.kind == "forbid_fact" and c.target in kept
    ]


def goal_problems(goal: set[Atom], objects: list[str], reader: Reader) -> list[str]:
    return [i.replace("is said to be clear", "must be clear") for i in state_problems(goal, objects, reader)]


def looks_like_planning(text: str, reader: Reader | None = None) -> bool:
    """Planning words, or two of the world's block names: worth a reading (the reader says "none" otherwise)."""
    if _STATEMENT.search(text) or _PLANNING_WORDS.search(text):
        return True
    if reader is None:
        return False
    colours = list(reader.colours.values())
    named = {
        c
        for w in set(re.findall(r"[a-z]+", text.lower()))
        if len(w) >= 3 or w in colours
        for c in ([w] if w in colours else difflib.get_close_matches(w, colours, n=1, cutoff=0.75))
    }  # 'bleu', 'greeen': people misspell colours too
    return len(named) >= 2


_UNDO = re.compile(
    r"\b(undo|take back|scratch|revert|go back)\b.*\b(last|that|previous|change)\b|^\s*undo\b", re.I
)
_WHAT_IF_HOLD = re.compile(
    r"\bwhat if\b.*\b(?:hand|gripper|arm|i)\b.*\b(?:holds?|holding|has|had|have|starts? with)\b", re.I
)


def perceive(text: str, reader: Reader, previous: dict | None, read_free=None) -> Perception:
    """previous: the thread's last problem ({"objects", "init", "goal", "constraints", "before"}) or None.
    read_free: free text -> a `Reading` (the reader adapter), used when the templates do not understand."""
    if _STATEMENT.search(text):
        try:
            init, goal = reader.statement(text)
        except WorldError as e:
            if read_free is not None:
                return understand(read_free(text), reader)
            return Perception(
                "clarify",
                question=f"I could not read that problem: {e}. "
                "Describe it as 'As initial conditions I have that, ... My goal is to have that ...'.",
            )
        objects = sorted({o for a in init | goal for o in a[1:]})
        rest = _after_statement(text)
        rules = reader.constraints(rest, init)
        # a rule in words the patterns do not know, said with the request (not in the world's description)
        said = _ASK_FOR_PLAN.sub(" ", rest.rsplit("[STATEMENT]", 1)[-1]).strip()
        if not rules and read_free is not None and _RULE_WORDS.search(said):
            rules = read_free(said).rules
        p = Perception("problem", objects, init, goal, rules, reader="templates")
        return _checked(p, reader, text)
    if read_free is not None:  # read each text once, whichever path asks first
        read_free = _once(read_free)
    if reader.vb.numbered:  # free phrasing in a world of numbered names: read by the names' types
        typed = reader.typed.read(text)
        said = typed is not None and typed[0] - reader.vb.type_facts(typed[2])
        if typed is not None and previous and not said and typed[1]:
            return _typed_followup(typed[1], text, reader, previous)
        if typed is not None and (typed[1] or not previous):
            init, goal, objects = typed
            p = Perception("problem", objects, init, goal, reader.constraints(text, init), reader="types")
            issues = placement_problems(init, objects, reader.typed)
            if p.goal and issues:
                question = issues[0][0].upper() + issues[0][1:]
                return Perception(
                    "clarify",
                    question=question.rstrip(".") + ("" if question.endswith("?") else "."),
                    reader="types",
                )
            return _checked(p, reader, text)
    # "the purple block" when no purple block exists: the reader names unknown blocks itself (a word pattern
    # alone also takes "the middle block" or "the only block" for one)
    unknown = reader.unknown_objects(text) if read_free is None else []
    if previous and not unknown:
        p = followup(text, reader, previous, read_free)
        if p is not None:
            return p
    if unknown:
        known = ", ".join(f"the {reader.names[o]}" for o in reader.all_objects)
        return Perception("clarify", question=f"I don't know {unknown[0]}. The blocks I know are {known}.")
    if read_free is not None and looks_like_planning(text, reader):
        return understand(read_free(text), reader)
    if looks_like_planning(text):
        return Perception(
            "clarify",
            question="I could not tell the blocks' positions and the goal from that. Say it as 'As initial "
            "conditions I have that, the red block is on the table, ... My goal is to have that the red block is "
            "on top of the blue block.'",
        )
    return Perception("chat")


def followup(text: str, reader: Reader, previous: dict, read_free=None) -> Perception | None:
    """A turn that edits the thread's problem: new goals or rules ("now also put yellow on orange", "and don't
    touch yellow"), "undo the last one" (the problem before the last edit), "what if the hand holds red?" (the
    same goal from a start with red in the hand). None when the text is no such edit (a new request: the reader
    reads a start in it)."""
    prev_init = {tuple(a) for a in previous["init"]}
    prev_goal = {tuple(a) for a in previous["goal"]}
    prev_cons = [Constraint.from_dict(c) for c in previous.get("constraints", [])]
    objects = list(previous["objects"])
    if _UNDO.search(text) and not reader.goal_phrases(text):
        before = previous.get("before")
        if not before:
            return Perception("clarify", question="There is no earlier change in this conversation to undo.")
        p = Perception(
            "followup",
            list(before["objects"]),
            {tuple(a) for a in before["init"]},
            {tuple(a) for a in before["goal"]},
            [Constraint.from_dict(c) for c in before.get("constraints", [])],
            reader="patterns",
        )
        p.undo = True
        return _checked(p, reader, text)
    if _WHAT_IF_HOLD.search(text):
        named = [o for o in reader.named_in(text) if o in objects]
        if len(named) == 1:
            held = named[0]
            above = [a[1] for a in prev_init if a[0] == "on" and a[2] == held]
            if above:
                return Perception(
                    "clarify",
                    question=f"The {reader.names[held]} has the {reader.names[above[0]]} on it, so the hand cannot "
                    f"hold it at the start. Where should the {reader.names[above[0]]} be?",
                )
            init = {a for a in prev_init if not (len(a) > 1 and a[1] == held and a[0] in ("on", "ontable"))}
            init = {a for a in init if a[0] not in ("handempty", "holding")}
            under = [a[2] for a in prev_init if a[0] == "on" and a[1] == held]
            init |= {("holding", held)} | {("clear", u) for u in under}
            init.discard(("clear", held))
            p = Perception("followup", objects, init, prev_goal, prev_cons, reader="patterns")
            return _checked(p, reader, text)
    goals = reader.goal_phrases(text)
    cons = reader.constraints(text, prev_init)
    how = "patterns"
    if (
        read_free is not None
        and looks_like_planning(text, reader)
        and (len(text.split()) > 12 or not (goals or cons))
    ):
        r = read_free(text)
        if r.start:  # a whole new request, not an edit
            return understand(r, reader)
        if not (goals or cons) and not r.unknown and not r.unread and (r.goal or r.macros or r.rules):
            goals = set(r.goal)  # an edit in words the patterns do not know: the reader's goal and rules
            for m in r.macros:
                expanded = _expand(m, prev_init, objects, reader)
                if isinstance(expanded, str):
                    return Perception("clarify", question=expanded, reader="adapter")
                goals |= expanded
            cons, how = list(r.rules), "adapter"
    if not goals and not cons:
        return None
    p = Perception("followup", objects, prev_init, _edit_goal(prev_goal, goals), prev_cons + cons, reader=how)
    return _checked(p, reader, text)


def _typed_followup(new: set[Atom], text: str, reader: Reader, previous: dict) -> Perception:
    """ "Now also bring package_1 to location_0_0" in a thread: goals and nothing of now, an edit of the thread's
    problem. A new goal for an object that had one ("package_0 to location_0_1 instead") replaces it."""
    init = {tuple(a) for a in previous["init"]}
    goal = {tuple(a) for a in previous["goal"]}
    goal = {g for g in goal if not any(n[0] == g[0] and n[1:2] == g[1:2] for n in new)} | set(new)
    cons = [Constraint.from_dict(c) for c in previous.get("constraints", [])] + reader.constraints(text, init)
    objects = sorted(set(previous["objects"]) | {o for a in new for o in a[1:]})
    p = Perception("followup", objects, init, goal, cons, reader="types")
    return _checked(p, reader, text)


def _once(read_free):
    memo: dict[str, Reading] = {}

    def read(text: str) -> Reading:
        if text not in memo:
            memo[text] = read_free(text)
        return memo[text]

    return read


def understand(r: Reading, reader: Reader) -> Perception:
    """The reader's reading -> a checked problem, or the question that makes it one. What is said stays as said;
    what people leave unsaid is completed (complete_state); `reverse` and `all on table` are expanded from the
    start; a block without a place, a contradiction or a goal that cannot hold becomes a question naming them."""
    if r.chat or not (r.start or r.goal or r.macros or r.rules or r.rest_on_table or r.unknown or r.unread):
        return Perception("chat", reader="adapter")  # "none", or nothing left once unstated rules are dropped
    if r.unknown:
        known = ", ".join(reader.colours[o] for o in reader.all_objects)
        return Perception(
            "clarify",
            question=f"I don't know the {r.unknown[0]} block. The blocks I know are {known}.",
            reader="adapter",
        )
    if r.unread:
        return Perception(
            "clarify",
            question="I could not read all of that. Could you say where each block is (on the table, on which "
            "block, or in the hand) and what you want at the end?",
            reader="adapter",
        )
    objects = r.objects
    if r.rest_on_table:  # "they're all on the table", "the rest are on the table": every block named
        named = (
            [o for a in r.goal for o in a[1:]] + [o for m in r.macros for o in m[1:]] + rule_objects(r.rules)
        )
        objects += [o for o in dict.fromkeys(named) if o not in objects]
    if not r.start and not (r.rest_on_table and objects):
        if r.goal or r.macros:
            return Perception(
                "clarify",
                question="Where is each block now? You told me what you want but not how the blocks stand.",
                reader="adapter",
            )
        return Perception(
            "clarify", question="What should I plan? Tell me where each block is now and what you want."
        )
    said = set(r.start)
    issues = state_problems(said, objects, reader)
    if issues:
        return Perception(
            "clarify",
            question="That cannot be the starting table: " + "; ".join(issues) + ". Which is it?",
            reader="adapter",
        )
    init = complete_state(said, objects, blocksworld_names(reader.vb.domain) or {})
    if not r.goal and not r.macros:
        return Perception(
            "clarify",
            question=f"{summary(objects, init, set(), [], reader)} What should the blocks look like in the end?",
            reader="adapter",
        )
    goal = set(r.goal)
    for m in r.macros:
        expanded = _expand(m, init, objects, reader)
        if isinstance(expanded, str):
            return Perception("clarify", question=expanded, reader="adapter")
        goal |= expanded
    # a fact a rule keeps all along holds at the end too: the rule says it ("keep violet on the table" is not
    # also a goal the reply lists)
    kept = {c.target for c in r.rules if c.kind == "require_fact"}
    goal = goal - kept or goal
    named = {o for a in goal for o in a[1:]} | set(rule_objects(r.rules))
    stray = [o for o in reader.all_objects if o in named and o not in objects]
    if stray:
        which = " and ".join(f"the {reader.names[o]}" for o in stray)
        return Perception(
            "clarify",
            question=f"Where is {which} now? You mention {'them' if len(stray) > 1 else 'it'}, but not where "
            f"{'they are' if len(stray) > 1 else 'it is'} at the start.",
            reader="adapter",
        )
    # a goal fact a rule forbids: the reader copied the rule into the goal, or the request contradicts itself
    clash = [c for c in r.rules if c.kind == "forbid_fact" and tuple(c.target) in goal]
    if clash:
        c = clash[0]
        return Perception(
            "clarify",
            question=f'The goal says {reader.vb.fact(tuple(c.target))}, but you also said "{c.describe()}". '
            "Which one holds?",
            reader="adapter",
        )
    p = Perception("problem", sorted(objects), init, goal, list(r.rules), reader="adapter")
    return _checked(p, reader, "")


def _expand(macro: tuple, init: set[Atom], objects: list[str], reader: Reader) -> set[Atom] | str:
    """`all on table` and `reverse [block]` as goal facts, from the start; a question when ambiguous."""
    if macro[0] == "all on table":
        return {("ontable", o) for o in objects}
    towers = _towers(init, objects)
    tall = [t for t in towers if len(t) > 1]
    if len(macro) > 1:
        tall = [t for t in tall if macro[1] in t]
    if not tall:
        return "There is no stack to reverse: every block stands alone. What should the blocks look like at the end?"
    if len(tall) > 1:
        options = " or ".join(f"the one with the {reader.names[t[-1]]} on top" for t in tall)
        return f"Which stack should I reverse: {options}?"
    t = list(reversed(tall[0]))
    return {("ontable", t[0])} | {("on", t[i], t[i - 1]) for i in range(1, len(t))}


def _towers(init: set[Atom], objects: list[str]) -> list[list[str]]:
    """The stacks of a complete state, bottom to top."""
    up = {a[2]: a[1] for a in init if a[0] == "on"}
    out = []
    for o in objects:
        if ("ontable", o) in init:
            t = [o]
            while t[-1] in up:
                t.append(up[t[-1]])
            out.append(t)
    return out


def summary(objects, init: set[Atom], goal: set[Atom], constraints: list[Constraint], reader: Reader) -> str:
    """What was understood, in one short line: "You have: red on blue, blue and yellow on the table. You want:
    blue on yellow." (and the rules), so that a misreading shows."""
    w = reader.colour
    roles = {v: k for k, v in (blocksworld_names(reader.vb.domain) or {}).items()}
    if not roles:  # another world: the facts that can change in its own words, the fixed ones counted
        static = reader.vb.static
        said = [reader.vb.fact(a) for a in sorted(init) if a[0] not in static and reader.vb.fact(a)]
        fixed = sum(1 for a in init if a[0] in static)
        out = f"You have: {', '.join(said)}" + (f" (and {fixed} facts that never change)." if fixed else ".")
        if goal:
            out += f" You want: {'; '.join(reader.vb.fact(a) for a in sorted(goal))}."
        return out + (f" Rules: {'; '.join(c.describe() for c in constraints)}." if constraints else "")
    init = {(roles.get(a[0], a[0]), *a[1:]) for a in init}
    goal = {(roles.get(a[0], a[0]), *a[1:]) for a in goal}
    have = [f"{w(a[1])} on {w(a[2])}" for a in sorted(init) if a[0] == "on"]
    table = [w(a[1]) for a in sorted(init) if a[0] == "ontable"]
    if table:
        have.append(f"{_and(table)} on the table")
    have += [f"{w(a[1])} in the hand" for a in sorted(init) if a[0] == "holding"]
    out = f"You have: {', '.join(have)}."
    if goal:
        want = []
        for a in sorted(goal, key=lambda a: (a[0] != "on", a)):
            if a[0] == "on":
                want.append(f"{w(a[1])} on {w(a[2])}")
            elif a[0] == "ontable":
                want.append(f"{w(a[1])} on the table")
            elif a[0] == "clear":
                want.append(f"nothing on {w(a[1])}")
            elif a[0] == "holding":
                want.append(f"{w(a[1])} in the hand")
            else:
                want.append("the hand empty")
        out += f" You want: {', '.join(want)}."
    if constraints:
        out += f" Rules: {'; '.join(c.describe() for c in constraints)}."
    return out


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


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
        return Perception("clarify", question="What should hold in the end? I found no goal.")
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
    issues = rule_problems(p.constraints)
    if issues:
        return Perception(
            "clarify",
            question="Your rules contradict each other: " + "; ".join(issues) + ". Which one holds?",
        )
    return p
