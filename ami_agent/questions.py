"""Questions about a plan's states, asked in a thread after a plan ("what will it look like at the end?", "what is on
the red block after step 2?", "is blue clear when you're done?"): when (before the plan, after step k, at the end),
what (the whole state, what is on a block, where a block is, what the hand holds, what stands on the table) and which
block. The decoder says the state (the world model's prediction, `Decoder.describe`); `answer` picks out of the
facts it said what the question asks.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

Atom = tuple[str, ...]

# question kinds; each answer also says what its neighbours ask ("nothing is on red: it is clear")
KINDS = ("describe", "covered", "place", "holding", "table")

_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}  # fmt: skip
_NUM = r"(\d+|" + "|".join(_NUMBERS) + r")(?:st|nd|rd|th)?"
_STEP = r"(?:step|move|action|stage)"
_STEP_K = re.compile(rf"\b{_STEP}\s*(?:#|no\.?|number)?\s*{_NUM}\b|\b{_NUM}\s+{_STEP}\b", re.I)
_BEFORE_STEP = re.compile(
    rf"\b(?:right\s+|just\s+)?before\s+(?:(?:you|we|i|the robot|it)\s+(?:do|does|make|makes|carry out|"
    rf"carries out|perform|performs|execute|executes|start|starts)\s+|doing\s+)?(?:the\s+)?"
    rf"(?:{_STEP}\s*{_NUM}|{_NUM}\s+{_STEP})",
    re.I,
)
_LAST_STEP = re.compile(rf"\b(?:last|final)\s+{_STEP}\b", re.I)
_BEFORE_LAST = re.compile(rf"\bbefore\s+(?:the\s+)?(?:last|final)\s+{_STEP}\b", re.I)
_END = re.compile(
    r"\b(?:at the end|in the end|end state|final state|finish|finished|done|complete|completed|over|"
    r"afterwards|after(?:\s+\w+){0,2}\s+plan|end up|ends up|result|outcome|goal state|wrapped up|all moves|"
    r"all (?:the )?steps|everything is moved|by the end|end)\b",
    re.I,
)
_START = re.compile(
    r"\b(?:start|starting|beginning|begining|begin|initially|initial|outset|right now|now|currently|at first|"
    r"original|originally|before (?:you|u|we|i|it|anything|any|the plan|starting|moving|the robot|the arm|doing)|"
    r"before (?:the )?first)\b",
    re.I,
)
_STATE_CUES = re.compile(
    r"\b(?:look like|looks like|describe|arrangement|arranged|layout|configuration|situation|picture|set ?up|"
    r"state|scene|where|location|position|what(?:'s| is| will be| would be)?|which|is|are|will|would|anything|"
    r"something|holding|"
    r"clear|on top|under|below|beneath|table)\b",
    re.I,
)
_HOLD = re.compile(r"\b(?:hold|holds|holding|held|carry|carrying|grip|gripping|grasp|grasping|in (?:the|its|your|my) "
                   r"(?:hand|gripper|claw|grip|arm)|gripper|claw)\b", re.I)  # fmt: skip
_HAND = re.compile(r"\b(?:hand|hands|gripper|claw)\b", re.I)  # no block named: a question about the hand
_CLEAR = re.compile(r"\b(?:clear|free|uncovered|exposed|bare|empty on top|nothing on|anything on|something on|"
                    r"on top of|above|stacked on|sitting on top|resting on top)\b", re.I)  # fmt: skip
_UNDER = re.compile(r"\b(?:under|underneath|below|beneath|sitting on|resting on|standing on|rest on|sit on|"
                    r"stand on|on what|supporting|support)\b", re.I)  # fmt: skip
_COVERED = re.compile(
    r"\b(?:clear|free|uncovered|exposed|bare|(?:nothing|anything|something)\s+(?:is\s+|sitting\s+|resting\s+|"
    r"stacked\s+)?(?:on|above)|on top of (?:it|that))\b",
    re.I,
)
_WHICH_BLOCKS = re.compile(r"\b(?:which|what)\s+(?:of\s+the\s+\w+\s+)?(?:blocks|ones)\b", re.I)
_WHERE = re.compile(r"\b(?:where|location|position|placed|place)\b|\bwhere'?s\b", re.I)
_TABLE = re.compile(r"\b(?:on the table|on the floor|table)\b", re.I)
_DESCRIBE = re.compile(r"\b(?:look|looks|describe|arrangement|layout|configuration|situation|picture|set ?up|"
                       r"state|scene|everything|whole|overall|all the blocks|each block|every block)\b", re.I)  # fmt: skip
_NOT_A_QUESTION = re.compile(r"\bwhat if\b|\b(?:undo|instead|now (?:also )?put|also put)\b", re.I)
_VERBS = r"(?:put|stack|unstack|move|place|pick|get|make|build|swap|reverse|rearrange|arrange|set|lift|take)"
_REQUEST = re.compile(
    rf"\b(?:can|could|would|will)\s+you\s+(?:please\s+)?{_VERBS}\b|\bhow\s+(?:do|can|could|would|should)\s+"
    rf"(?:i|we|you)\b|\bplease\s+{_VERBS}\b|\b(?:i want|i need|i'd like|i would like|let'?s|my goal|goal is|"
    r"initial conditions|as initial)\b|^\s*(?:now\s+)?(?:put|stack|unstack|move|place|pick|get|make|build|swap)\b",
    re.I,
)
_ASKS_FOR_MOVES = re.compile(
    r"\b(?:get|put|make|build|unstack|swap|reverse|rearrange|turn|flip|want|need|goal|should i|do i|to have|"
    r"possible|which moves|what moves|what steps|how many|(?:can|could|would|will) (?:you|we|i)|explain|mean|"
    r"meaning)\b",
    re.I,
)
_QUESTION = re.compile(
    r"\?|^\W*(?:(?:so|and|ok|okay|hey|hi|hmm|um|also|then|btw|quick question|just curious)\W+)*(?:what|which|"
    r"where|is|are|will|would|how|describe|tell|show|can|could|does|do|anything|any|something|whats|wheres|who|"
    r"was|were|did|has|have|give|list|name|say)\b|\b(?:curious|wondering|wonder|want to know|like to know)\b",
    re.I,
)


# "could you tell me ...", "I want to know ...": a question asked politely, no request for moves
_POLITE = re.compile(
    r"\b(?:can|could|would|will)\s+you\s+(?:please\s+|kindly\s+)?(?:tell|describe|say|show|list|let me know)\b|"
    r"\b(?:i|we)\s+(?:just\s+|really\s+|only\s+)?(?:want|need|'?d like|would like|wanna)\s+to\s+(?:know|understand|"
    r"check|confirm|make sure|follow along|follow|see|ask|be sure|double[- ]check|verify|picture)\b|"
    r"\b(?:may|can|could)\s+i\s+ask\b",
    re.I,
)
# the words questions about states are made of, for fixing typos ("wats undr the red block after the frist step")
_VOCABULARY = (
    "what whats where wheres which under underneath beneath below above first second third fourth fifth sixth "
    "step steps table holding holds hand gripper finished finish beginning start after before clear block "
    "blocks look looks like final last empty nothing anything something everything robot plan done complete "
    "completed resting sitting standing starting arrangement describe situation"
).split()
# common words a typo fix must leave alone (each within reach of a word above)
_KEEP = set(
    "state stack stacked stacks stop steel hold held hands tell left there these those other once does tops "
    "less note then thing things wheel wear were here sides four five seven eight nine".split()
)
_SHORT = {"wat": "what", "wht": "what", "whr": "where", "u": "you", "r": "are", "ur": "your"}


def _fix_typos(text: str, colours: list[str]) -> str:
    def fix(m: re.Match) -> str:
        w = m.group(0)
        low = w.lower()
        if low in _SHORT:
            return _SHORT[low]
        if (
            len(low) < 4
            or low in _KEEP
            or low in _VOCABULARY
            or difflib.get_close_matches(low, colours, cutoff=0.75)
        ):
            return w  # a colour, misspelt or not ("yelow" is no "below")
        close = difflib.get_close_matches(low, _VOCABULARY, n=1, cutoff=0.8)
        return close[0] if close else w

    return re.sub(r"[A-Za-z]+", fix, text)


@dataclass
class StateQuestion:
    when: str | int  # "start" | "end" | k (after step k)
    kind: str  # one of KINDS
    block: str | None  # the object asked about (its PDDL name)


# words close to a colour that are no misspelling of one
_NOT_COLOURS = {
    "block",
    "blocks",
    "blocked",
    "read",
    "reads",
    "ready",
    "reed",
    "bled",
    "glue",
    "clue",
    "true",
    "bold",
}


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _when(text: str) -> str | int:
    if m := _BEFORE_STEP.search(text):
        k = _number(next(g for g in m.groups() if g)) - 1
        return "start" if k <= 0 else k
    if _BEFORE_LAST.search(text):
        return "before last"
    if _LAST_STEP.search(text):
        return "end"
    if m := _STEP_K.search(text):
        return _number(next(g for g in m.groups() if g))
    if _END.search(text):
        return "end"
    if _START.search(text):
        return "start"
    return "end"


def _said_step(text: str) -> bool:
    """The text names a step of the plan ("after step 2", "the last move")."""
    return any(p.search(text) for p in (_BEFORE_STEP, _LAST_STEP, _STEP_K))


def _said_when(text: str) -> bool:
    """The text names a step, the start or the end."""
    return any(p.search(text) for p in (_BEFORE_STEP, _LAST_STEP, _STEP_K, _END, _START))


def _named(text: str, colours: dict[str, str]) -> list[tuple[str, str]]:
    """(object, the word that names it) for the objects a text names by colour (object -> colour word), in the order
    said, each once; a misspelt colour counts when it is close to one ("yelow")."""
    by_word = {c.lower(): o for o, c in colours.items()}
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"[a-z]+", text.lower()):
        w = m.group(0)
        if w in by_word:
            hit = by_word[w]
        elif (
            len(w) >= 4
            and w not in _NOT_COLOURS
            and (close := difflib.get_close_matches(w, list(by_word), n=1, cutoff=0.8))
        ):
            hit = by_word[close[0]]
        else:
            continue
        found.append((m.start(), hit, w))
    out: list[tuple[str, str]] = []
    for _, o, w in sorted(found):
        if o not in [x for x, _ in out]:
            out.append((o, w))
    return out


def state_question(text: str, colours: dict[str, str]) -> StateQuestion | None:
    """The question, or None when the text is no question about a state (a new request, an edit, small talk).
    colours: object -> its colour word, for the thread's objects."""
    words = [c.lower() for c in colours.values()]
    text = _fix_typos(re.sub(r"\bontop\b", "on top", text, flags=re.I), words)
    if _NOT_A_QUESTION.search(text) or not _QUESTION.search(text):
        return None
    if not (_STATE_CUES.search(text) or _said_when(text)):
        return None
    asked = _POLITE.sub(" tell ", text)
    if _REQUEST.search(asked) or _ASKS_FOR_MOVES.search(asked) and not _said_step(asked):
        return None  # a new request or an edit ("red is on blue, what should I do to get blue on red?")
    when = _when(text)
    named = _named(text, colours)
    block, word = named[0] if named else (None, "")
    if block is None:
        if _HOLD.search(text) or _HAND.search(text):
            kind = "holding"
        elif _TABLE.search(text) and (not _DESCRIBE.search(text) or _WHICH_BLOCKS.search(text)):
            kind = "table"
        elif _DESCRIBE.search(text) or _said_when(text):
            kind = "describe"
        else:
            return None  # "is that the shortest plan?", "what's the weather?"
        return StateQuestion(when, kind, None)
    if _DESCRIBE.search(text) and not (_WHERE.search(text) or _CLEAR.search(text) or _UNDER.search(text)):
        return StateQuestion(when, "describe", None)
    x = rf"(?:the\s+)?{re.escape(word)}\b"
    if _HOLD.search(text) and not _WHERE.search(text):
        kind = "holding"
    elif re.search(rf"\b(?:on|onto|on top of|on top|atop|above|over)\s+{x}", text, re.I):
        kind = "covered"  # what is on red
    elif re.search(rf"\b(?:under|underneath|below|beneath)\s+{x}", text, re.I):
        kind = "place"  # what is under red: what red stands on
    elif _WHERE.search(text):
        kind = "place"
    elif _COVERED.search(text):
        kind = "covered"  # "will red have nothing on top of it", "is red free on top"
    elif _UNDER.search(text) or re.search(rf"{x}(?:\s+block)?\b.*\bon\b", text, re.I):
        kind = "place"  # where is red; what is red sitting on; is red on the table
    elif _CLEAR.search(text):
        kind = "covered"
    else:
        kind = "place"
    return StateQuestion(when, kind, block)


def step_of(when: str | int, steps: int) -> int | None:
    """The state's index in a plan of `steps` steps (0: before it), None when the plan has no such step."""
    if when == "start":
        return 0
    if when == "end":
        return steps
    if when == "before last":
        return max(0, steps - 1)
    return when if isinstance(when, int) and 0 <= when <= steps else None


def when_phrase(t: int, steps: int) -> str:
    if t == 0:
        return "Before the first step"
    if t == steps:
        return f"At the end (after step {t})"
    return f"After step {t}"


def answer(q: StateQuestion, facts: set[Atom], name) -> str:
    """The direct answer from the facts said of the state (blocksworld's predicates: on, ontable, clear, holding,
    handempty); name(object) -> "the red block". '' when the world has none of them (the description answers)."""
    preds = {a[0] for a in facts}
    if not preds & {"on", "ontable", "holding", "clear", "handempty"}:
        return ""
    on = {a[1]: a[2] for a in facts if a[0] == "on"}
    held = [a[1] for a in facts if a[0] == "holding"]
    if q.kind == "holding":
        return f"The hand holds {name(held[0])}." if held else "The hand is empty."
    b = q.block
    if q.kind == "table":
        down = [a[1] for a in sorted(facts) if a[0] == "ontable"]
        return "On the table: " + _and([name(o) for o in down]) + "." if down else "No block is on the table."
    if q.kind == "covered":
        above = [x for x, y in on.items() if y == b]
        if above:
            return f"{_cap(name(above[0]))} is on top of {name(b)}, so {name(b)} is not clear."
        if b in held:
            return f"Nothing is on {name(b)}: the hand holds it."
        return f"Nothing is on {name(b)}: it is clear."
    if q.kind == "place":
        if b in on:
            return f"{_cap(name(b))} is on top of {name(on[b])}."
        if ("ontable", b) in facts:
            return f"{_cap(name(b))} is on the table."
        if b in held:
            return f"The hand holds {name(b)}."
        return f"I cannot tell where {name(b)} is."
    return ""


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
