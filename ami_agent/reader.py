"""The free-phrasing reader: a LoRA adapter on the base model that reads a whole request in the user's own words
("from bottom to top it is red, blue, orange; I want the tower reversed, but never put red on the table") into a
short reading, one line each for the start, the goal and the rules:

    start: red on table; blue on red; orange on blue
    goal: reverse
    rules: never red on table

The reading says what the text says, in its order, with the facts the words imply ("by itself", "from bottom to
top", "nothing is stacked": on the table; "they're all on the table", "the rest are on the table": `start: all on
table`); it adds nothing and checks nothing. Perception (ami_agent/perceive.py)
then does the reasoning code can do: completes the facts people leave unsaid, expands `reverse` and
`all on table`, and finds what is missing or contradictory, which becomes a question rather than a guess.

The reading's language is defined by its generator (ami_agent/describe.py); training is ami_agent/reader_train.py;
the requests it is judged on were written apart from both (eval/data/free_requests.jsonl).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from decoder.backends import Request, Sampling
from decoder.prompt import chat_prompt_ids
from planner.constraints import Constraint
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Atom

SYSTEM = "Read the blocks request: where each block is at the start, the goal, and any rules."
READER_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "reader"
ADAPTER = "reader"
MAX_TOKENS = 160
OPERATORS = ("pick-up", "put-down", "stack", "unstack")


@dataclass
class Reading:
    """A parsed reading, in object names (PDDL), before any completion or check."""

    start: list[Atom] = field(default_factory=list)  # said facts, including clear and hand facts said
    goal: list[Atom] = field(default_factory=list)
    macros: list[tuple[str, ...]] = field(
        default_factory=list
    )  # ("reverse",), ("reverse", obj), ("all on table",)
    rules: list[Constraint] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # names no block of the world has
    unread: list[str] = field(default_factory=list)  # items outside the reading's language
    rule_unknown: list[str] = field(default_factory=list)  # the unknown names that only rules name
    rest_on_table: bool = False  # `start: all on table`: every block named and placed nowhere is on the table
    chat: bool = False
    text: str = ""  # the reading itself, as the adapter wrote it

    @property
    def objects(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in self.start:
            for o in a[1:]:
                seen.setdefault(o)
        return list(seen)


def prompt_ids(tokenizer, text: str) -> list[int]:
    return chat_prompt_ids(tokenizer, " ".join(text.split()) if "\n" not in text else text.strip(), SYSTEM)


def read_texts(backend, tokenizer, texts: list[str], max_tokens: int = MAX_TOKENS) -> list[str]:
    """Free texts -> the adapter's readings (greedy), all in one batch."""
    reqs = [Request(prompt_ids=prompt_ids(tokenizer, t)) for t in texts]
    outs = backend.generate(reqs, ADAPTER, Sampling(max_tokens=max_tokens)) if reqs else []
    return [o.text.strip() for o in outs]


class Names:
    """Colour words of a world's English <-> its objects ('red' <-> 'a'); near misses ('bleu') snap to a colour."""

    def __init__(self, vb: Verbalizer):
        compact = vb.config.compact_objects or {
            o: vb.object_phrase(o).removesuffix(" block") for o in vb.config.encoded_objects
        }
        self.word = dict(compact)  # object -> colour word
        self.obj = {w.lower(): o for o, w in compact.items()}

    def object(self, word: str) -> str | None:
        w = word.strip().lower().removeprefix("the ").removesuffix(" block")
        if w in self.obj:
            return self.obj[w]
        close = difflib.get_close_matches(w, list(self.obj), n=1, cutoff=0.75)
        return self.obj[close[0]] if close else None


_NAME = r"([a-z][a-z-]*)"
_ITEM = [
    (rf"^{_NAME} on table$", lambda m: ("ontable", m[1])),
    (rf"^{_NAME} on {_NAME}$", lambda m: ("on", m[1], m[2])),
    (rf"^{_NAME} clear$", lambda m: ("clear", m[1])),
    (rf"^holding {_NAME}$", lambda m: ("holding", m[1])),
    (r"^hand empty$", lambda m: ("handempty",)),
]
_RULE = [
    (rf"^never {_NAME} on table$", lambda m: ("forbid_fact", ("ontable", m[1]))),
    (rf"^never use ({'|'.join(OPERATORS)})$", lambda m: ("forbid_operator", (m[1],))),
    (rf"^never touch {_NAME}$", lambda m: ("forbid_object", (m[1],))),
    (rf"^never hold {_NAME}$", lambda m: ("forbid_fact", ("holding", m[1]))),
    (rf"^never {_NAME} on {_NAME}$", lambda m: ("forbid_fact", ("on", m[1], m[2]))),
    (rf"^keep {_NAME} on table$", lambda m: ("require_fact", ("ontable", m[1]))),
    (rf"^keep {_NAME} on {_NAME}$", lambda m: ("require_fact", ("on", m[1], m[2]))),
]


def rule_text(c: Constraint, word) -> str:
    """A rule in words ("never put red on the table"), quoted back when it blocks the goal."""
    t = c.target
    if c.kind == "forbid_operator":
        return f"never use {t[0]}"
    if c.kind == "forbid_object":
        return f"don't touch {word(t[0])}"
    head = "never put" if c.kind == "forbid_fact" else "keep"
    if t[0] == "holding":
        return f"never hold {word(t[1])}"
    if t[0] == "ontable":
        return f"{head} {word(t[1])} on the table"
    return f"{head} {word(t[1])} on {word(t[2])}"


def parse_reading(text: str, vb: Verbalizer, names: Names | None = None) -> Reading:
    """The adapter's reading -> object facts, macros and rules; names it cannot map go to `unknown`, items
    outside the language to `unread` (perception asks rather than guessing at either)."""
    names = names or Names(vb)
    r = Reading(text=text)
    if text.strip().lower() in ("none", ""):
        r.chat = True
        return r
    preds = _predicates(vb)

    in_facts: list[str] = []  # unknown names the start, the goal or a macro use

    def obj(word: str) -> str | None:
        o = names.object(word)
        if o is None and word not in r.unknown:
            r.unknown.append(word)
        return o

    for line in text.splitlines():
        m = re.match(r"\s*(start|goal|rules)\s*:(.*)$", line.strip(), re.I)
        if not m:
            if line.strip():
                r.unread.append(line.strip())
            continue
        section = m[1].lower()
        for item in (i.strip().lower().rstrip(".") for i in m[2].split(";")):
            if not item:
                continue
            rule = next(((f, re.match(p, item)) for p, f in _RULE if re.match(p, item)), None)
            if section == "rules" or (section == "goal" and rule is not None):  # a rule said with the goal
                hit = rule
                if hit is None:
                    r.unread.append(item)
                    continue
                kind, target = hit[0](hit[1])
                if kind == "forbid_operator":
                    r.rules.append(Constraint(kind, target, item))
                    continue
                words = list(target[1:]) if kind != "forbid_object" else [target[0]]
                objs = [obj(w) for w in words]
                if None in objs:
                    r.rule_unknown += [w for w, o in zip(words, objs) if o is None]
                    continue
                tgt = tuple(objs) if kind == "forbid_object" else (preds[target[0]], *objs)
                c = Constraint(kind, tgt)
                r.rules.append(Constraint(kind, tgt, rule_text(c, lambda o: names.word.get(o, o))))
                continue
            if section == "start" and item == "all on table":
                r.rest_on_table = True
                continue
            if section == "goal" and (item in ("reverse", "all on table") or item.startswith("reverse ")):
                if item.startswith("reverse "):
                    o = obj(item.split(" ", 1)[1])
                    in_facts += [item.split(" ", 1)[1]] if o is None else []
                    if o is not None:
                        r.macros.append(("reverse", o))
                else:
                    r.macros.append((item,))
                continue
            hit = next(((f, re.match(p, item)) for p, f in _ITEM if re.match(p, item)), None)
            if hit is None:
                r.unread.append(item)
                continue
            fact = hit[0](hit[1])
            objs = [obj(w) for w in fact[1:]]
            in_facts += [w for w, o in zip(fact[1:], objs) if o is None]
            if None in objs:
                continue
            atom = (preds[fact[0]], *objs)
            (r.start if section == "start" else r.goal).append(atom)
    # a name only a rule uses: grounded() forgets it when the request states no such rule
    r.rule_unknown = [w for w in dict.fromkeys(r.rule_unknown) if w not in in_facts]
    return r


def _predicates(vb: Verbalizer) -> dict[str, str]:
    """The reading's fact names -> the world's predicates (blocksworld's roles; PDDL names otherwise)."""
    names = blocksworld_names(vb.domain) or {}
    return {k: names.get(k, k) for k in ("on", "ontable", "clear", "holding", "handempty")}


def complete_state(init: set, objects: list[str], names: dict) -> set:
    """Blocksworld-like worlds: every block in the description is somewhere. A block the text places nowhere
    (the bottom of a stack whose own place goes unsaid, a block only said to be clear) stands on the table unless
    held; a block with nothing on it that is not held is clear; no block held means the hand is empty. Clear
    facts said are checked (perceive), not kept: they follow from the placement."""
    on, ontable, clear, hand, holding = (
        names.get(k) for k in ("on", "ontable", "clear", "handempty", "holding")
    )
    placed = {a[1] for a in init if a[0] in (on, ontable, holding)}
    out = {a for a in init if a[0] not in (clear, hand)}
    out |= {(ontable, o) for o in objects if o not in placed}
    below = {a[2] for a in out if a[0] == on}
    held = {a[1] for a in out if a[0] == holding}
    out |= {(clear, o) for o in objects if o not in below and o not in held}
    if not held:
        out.add((hand,))
    return out


# words that state a rule ("never", "don't", "without", "keep", "stay", "the whole time"); "I don't care where
# green ends up", "orange can go wherever" state none
_RULE_CUE = re.compile(
    r"n[\'’]t\b|\b(never|not|no|without|avoid|keep|keeps|kept|stay|stays|remain|remains|leave|untouched|hands|"
    r"throughout|ever|always|forbidden|prohibited|banned|disallowed|refrain|limits|fixed|glued|dont|cant|cannot|"
    r"mustnt|shouldnt|time|times)\b|\b(every|each|any)\s+(step|move|moment|point)\b",
    re.I,
)
_NO_RULE = re.compile(
    r"\b(?:do|does|did)\s*n[o\'’]?t\s+(?:really\s+)?(?:care|matter|mind|worry)\b|n[\'’]t\s+(?:really\s+)?"
    r"(?:care|matter|mind|worry)\b|\bnot\s+(?:too\s+much\s+)?trouble\b|\bnot\s+sure\b|\bno\s+matter\b|"
    r"\bstay\s+or\s+go\b",
    re.I,
)

_REFERENCE = {
    "it", "its", "that", "this", "them", "they", "those", "top", "topmost", "bottom", "middle", "base",
    "held", "hand", "gripper", "holding", "former", "latter", "other", "others", "upper", "lower", "highest",
}  # fmt: skip

# the words people use for each blocksworld action ("no stacking", "don't pick anything up", "never put a block
# down"); another world's operator by its own name
_ACTION_WORDS = {
    "stack": r"\b(?:stack\w*|pil\w+|on top|onto|put|place|build)",
    "unstack": r"\b(?:unstack\w*|take\w* \w*\s*off|remov\w*|lift\w* \w*\s*off|off)",
    "pick-up": r"\b(?:pick\w*|lift\w*|grab\w*|take|raise|up)",
    "put-down": r"\b(?:put\w*|set\w*|place\w*|down|drop\w*|lower\w*)",
}
_CUE_WORDS = ["never", "without", "avoid", "keep", "stay", "stays", "remain", "leave", "untouched", "always"]


_REFERENCE_LONG = sorted(r for r in _REFERENCE if len(r) >= 5)  # long enough to be recognised misspelt


def _refers(words: list[str]) -> bool:
    """A pronoun or a place ("it", "the top block", "the btotom one") that can stand for any block."""
    return bool(_REFERENCE.intersection(words)) or any(
        difflib.get_close_matches(w, _REFERENCE_LONG, n=1, cutoff=0.75) for w in words if len(w) >= 5
    )


def _misspelt_cue(sentence: str) -> bool:
    """ "neever", "wihout", "stya": a rule word misspelt."""
    words = [w for w in re.findall(r"[a-z]+", sentence.lower()) if len(w) >= 3]
    return any(difflib.get_close_matches(w, _CUE_WORDS, n=1, cutoff=0.75) for w in words)


def rule_objects(rules: list[Constraint]) -> list[str]:
    """The blocks rules name (a fact's arguments; the block a forbid_object rule protects)."""
    return [
        o
        for c in rules
        if c.kind != "forbid_operator"
        for o in (c.target if c.kind == "forbid_object" else c.target[1:])
    ]


def grounded(r: Reading, request: str, names: Names) -> Reading:
    """Drops the rules the request never states. A rule needs a sentence (or a bracket) with a rule word that
    names one of its blocks, or a pronoun or place that may ("don't touch it", "never hold the top one"). The
    reader sometimes turns "I don't care where green ends up" or a plain goal into "never touch green", and a rule
    nobody set makes plans longer or impossible."""
    sentences = [_NO_RULE.sub(" ", s) for s in re.split(r"(?<=[.!?;:])\s+|\n|\s+but\s+|[()]", request)]
    cues = [re.findall(r"[a-z]+", s.lower()) for s in sentences if _RULE_CUE.search(s) or _misspelt_cue(s)]

    def names_it(words: list[str], blocks: set[str]) -> bool:
        if _refers(words):
            return True  # "don't touch it", "never hold the top block": any block
        colours = {names.word[o] for o in blocks}
        # a misspelt colour ("beij") is closer to its own word when no colour is spelt right
        cutoff = 0.75 if any(w in names.obj for w in words) else 0.6
        return any(
            w in colours or difflib.get_close_matches(w, colours, cutoff=cutoff) for w in words if len(w) >= 2
        )

    def said(c: Constraint) -> bool:
        if c.kind == "forbid_operator":  # its action named in a sentence with a rule word
            action, name = _ACTION_WORDS.get(c.target[0], c.target[0]), c.target[0].split("-")
            return any(
                re.search(action, " ".join(words))
                or any(
                    difflib.get_close_matches(w, name, n=1, cutoff=0.75) for w in words
                )  # "unsteck", "stak"
                for words in cues
            )
        return any(names_it(words, set(rule_objects([c]))) for words in cues)

    r.rules = [c for c in r.rules if said(c)]
    # "never touch video" from "... ignore that if you see it in the video": no rule, so no unknown block either
    stated = {w for words in cues for w in words}
    for w in r.rule_unknown:
        if w in r.unknown and not difflib.get_close_matches(w, stated, n=1, cutoff=0.75):
            r.unknown.remove(w)
    return r


# "everything is on the table right now", "they're all on the table", "all three are on the table": the start,
# said of every block at once; a sentence that asks for it ("I want them all on the table") or leaves some out
# ("all but red") does not count
_ALL_ON_TABLE = re.compile(
    r"\b(?:all|everything|every\s+block|each\s+block|both|none\s+of\s+them\s+(?:is|are)\s+stacked)\b[^.?!;]*"
    r"\bon\s+the\s+table\b|\bnothing\s+is\s+(?:stacked|on\s+(?:top\s+of\s+)?anything)\b",
    re.I,
)
_NOT_START = re.compile(
    r"\b(?:want|wants|wish|like|need|needs|goal|end|ends|ending|finish|final|finally|target|should|must|make|"
    r"get|put|move|build|then|after|afterwards|later|except|but|besides|apart|other|rest|remaining|when|until|"
    r"could|can|would|will|please|let|lets|if)\b",
    re.I,
)


def start_all_on_table(r: Reading, request: str, names: Names, ontable: str = "ontable") -> Reading:
    """A reading with no start where the request says every block is on the table: `start: all on table`, and
    the blocks that sentence names on the table. The reader sometimes writes the goal alone for "Build a tower of
    blue on orange. Everything is on the table right now." """
    if r.start or r.rest_on_table or r.unread:
        return r
    for sentence in re.split(r"(?<=[.!?;])\s+|\n|[()]", request):
        if _ALL_ON_TABLE.search(sentence) and not _NOT_START.search(sentence):
            r.rest_on_table = True
            named = [names.obj[w] for w in re.findall(r"[a-z]+", sentence.lower()) if w in names.obj]
            r.start += [(ontable, o) for o in dict.fromkeys(named)]
            break
    return r


def read(backend, tokenizer, texts: list[str], vb: Verbalizer) -> list[Reading]:
    names, ontable = Names(vb), _predicates(vb)["ontable"]
    return [
        start_all_on_table(grounded(parse_reading(t, vb, names), text, names), text, names, ontable)
        for t, text in zip(read_texts(backend, tokenizer, texts), texts)
    ]
