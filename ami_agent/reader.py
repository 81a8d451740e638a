"""The free-phrasing reader: a LoRA adapter on the base model that reads a description in the user's own words
("the red one sits on the blue one") clause by clause. The text is cut into sentences and the sentences into
clauses at commas, colons, semicolons and "and"; the adapter reads each clause, with its sentence as context, into
one fact in the world's standard phrasing, marked as part of the start or of the goal ("start: the red block is on
top of the blue block"), or "none" (an introduction like "To begin with"). One short answer per clause, all clauses
in one batch: a fact cannot be invented or dropped by a long rewrite, and each sentence's clauses share the
section most of them name. The facts go to perception as facts (start, goal), where they are checked. Facts people
leave unsaid in blocksworld-like worlds (which blocks are clear, whether the hand is empty) are completed by
`complete_state`.

Limits: facts must be separate clauses (a relative clause, "the red one, which is on the blue one", is not one
fact); "swap them"-style requests that need the previous problem are read by the follow-up patterns instead.

Training (its phrasings and generator) lives in ami_agent/reader_train.py; the phrasings the reader is evaluated on
live apart, in eval/heldout_phrasings.py.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from pathlib import Path

from decoder.backends import Request, Sampling
from decoder.prompt import chat_prompt_ids
from planner.worlds.errors import WorldError
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Atom

SYSTEM = "Read the part of the sentence as one fact about blocks, in the standard form."


def split_sentences(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if t.strip()]


def split_clauses(sentence: str) -> list[str]:
    """A sentence's clauses: cut at commas, colons, semicolons and 'and'."""
    body = " ".join(sentence.split()).rstrip(".!? ")
    return [c.strip() for c in re.split(r"\s*[,;:]\s*(?:and\s+)?|\s+and\s+", body) if c.strip()]


def clause_input(sentence: str, clause: str) -> str:
    return f"Sentence: {sentence}\nPart: {clause}"


def clause_answer(vb: Verbalizer, section: str | None, fact: Atom | None) -> str:
    return "none" if fact is None else f"{section}: {vb.fact(fact)}"


def snap_fact(vb: Verbalizer, text: str, objects: list[str]) -> str:
    """A fact the adapter wrote outside the world's standard phrasing, mapped to the standard one when that is
    unambiguous: facts that name no object ("the hands are empty" -> "the hand is empty") go to the closest
    object-free fact; facts that name objects only to a near-identical phrase (a typo). Otherwise unchanged (the
    statement then fails to parse and the agent asks, rather than guessing a fact about a block)."""

    try:
        vb.read_fact(text, objects)
        return text
    except WorldError:
        pass
    named = named_objects(vb, text, objects)
    arity = 0 if not named else None
    cands = []
    for pred, n in vb.domain.predicates.items():
        if (arity is not None and n != arity) or (arity is None and n == 0):
            continue
        for args in itertools.permutations(named, n):
            phrase = vb.fact((pred, *args))
            if phrase:
                cands.append(phrase)
    if not cands:
        return text
    score = {c: difflib.SequenceMatcher(None, text.lower(), c.lower()).ratio() for c in cands}
    best = max(cands, key=score.get)
    need = 0.6 if arity == 0 else 0.9
    return best if score[best] >= need else text


def assemble(
    answers: list[list[str]], vb: Verbalizer, objects: list[str] | None = None
) -> tuple[set[Atom], set[Atom]] | None:
    """The adapter's answers, sentence by sentence -> (start facts, goal facts). Each sentence's facts go to the
    section most of its clauses name (a sentence is either about the start or about the goal); facts outside the
    world's standard phrasing are snapped to it where unambiguous (`snap_fact`). None when no start or no goal was
    read, or an answer is not a fact of this world (the agent then asks rather than guesses)."""
    objects = objects or sorted(vb.config.encoded_objects)
    start: set[Atom] = set()
    goal: set[Atom] = set()
    for sentence in answers:
        parsed = []
        for a in sentence:
            m = re.match(r"\s*(start|goal)\s*:\s*(.+?)\s*\.?\s*$", a, re.I | re.S)
            if m:
                try:
                    fact = vb.read_fact(snap_fact(vb, " ".join(m.group(2).split()), objects), objects)
                except WorldError:
                    return None
                parsed.append((m.group(1).lower(), fact))
        if not parsed:
            continue
        section = Counter(sec for sec, _ in parsed).most_common(1)[0][0]
        (start if section == "start" else goal).update(f for _, f in parsed)
    if not start or not goal:
        return None
    return start, goal


def complete_state(init: set, objects: list[str], names: dict) -> set:
    """Blocksworld-like worlds: a block with nothing on it that is not held is clear; no block held means the hand
    is empty; a block on nothing and not held is on the table. Only facts of kinds the text left out are added."""
    on, ontable, clear, hand, holding = (
        names.get(k) for k in ("on", "ontable", "clear", "handempty", "holding")
    )
    out = set(init)
    held = {a[1] for a in init if a[0] == holding}
    below = {a[2] for a in init if a[0] == on}
    above = {a[1] for a in init if a[0] == on}
    if not any(a[0] == clear for a in init):
        out |= {(clear, o) for o in objects if o not in below and o not in held}
    if not any(a[0] in (hand, holding) for a in init) or (not held and not any(a[0] == hand for a in init)):
        out.add((hand,))
    if not any(a[0] == ontable for a in init):
        out |= {(ontable, o) for o in objects if o not in above and o not in held}
    return out


READER_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "reader"
ADAPTER = "reader"


def prompt_ids(tokenizer, text: str) -> list[int]:

    return chat_prompt_ids(tokenizer, text, SYSTEM)


def named_objects(vb: Verbalizer, text: str, objects: list[str]) -> list[str]:
    """The objects a text names by their phrases ("red block", "red"; not raw names: "a" is also a word), in
    order of first mention."""
    low = " " + " ".join(re.findall(r"[a-z0-9_-]+", text.lower())) + " "
    found = {}
    for phrase, obj in vb.object_reader(objects).items():
        if phrase != obj.lower():
            at = low.find(f" {phrase} ")
            if at >= 0:
                found[obj] = min(at, found.get(obj, at))
    return sorted(found, key=found.get)


_POINTING = re.compile(r"\b(it|its|them|they|one|ones)\b", re.I)
_PLACING = re.compile(r"\b(on|onto|top|table|under|beneath|below|above|clear|hold\w*|stack\w*)\b", re.I)


def unresolved(vb: Verbalizer, clause: str, objects: list[str]) -> bool:
    """A clause that places a block it does not name ("it is on the table", "the other one is clear"): no reading
    of it can be trusted, so the request is not read (the agent asks instead)."""
    if named_objects(vb, clause, objects):
        return False
    return bool(_POINTING.search(clause)) and bool(_PLACING.search(clause))


def clause_choices(vb: Verbalizer, clause: str, objects: list[str]) -> list[str]:
    """What the reader may answer for a clause: "none", or one fact about the objects the clause names (no object
    it does not name; facts without objects when it names none), marked start or goal."""

    named = named_objects(vb, clause, objects)
    facts = []
    for pred, n in vb.domain.predicates.items():
        if (n == 0) != (not named):
            continue
        for args in itertools.permutations(named, n):
            phrase = vb.fact((pred, *args))
            if phrase:
                facts.append(phrase)
    return ["none"] + [f"{sec}: {f}" for sec in ("start", "goal") for f in facts]


def read_clauses(
    backend, tokenizer, texts: list[str], max_tokens: int = 40, vb: Verbalizer | None = None
) -> list[list[tuple[str, list]]]:
    """Free texts -> per text, per sentence: (sentence, [(clause, the adapter's answer), ...]). Greedy, every
    clause of every text sent together. With the world's English (vb), each answer is constrained to the clause's
    possible facts (`clause_choices`): the reader cannot name an object the clause does not mention."""

    cut = [[(s, split_clauses(s)) for s in split_sentences(t)] for t in texts]
    objects = sorted(vb.config.encoded_objects) if vb is not None else []
    reqs = [
        Request(
            prompt_ids=prompt_ids(tokenizer, clause_input(s, c)),
            choices=clause_choices(vb, c, objects) if vb is not None else None,
        )
        for text in cut
        for s, clauses in text
        for c in clauses
    ]
    outs = iter(
        [o.text for o in backend.generate(reqs, ADAPTER, Sampling(max_tokens=max_tokens))] if reqs else []
    )
    return [[(s, [(c, next(outs)) for c in clauses]) for s, clauses in text] for text in cut]


def read(
    backend, tokenizer, texts: list[str], vb: Verbalizer, max_tokens: int = 40
) -> list[tuple[set[Atom], set[Atom]] | None]:
    """Free texts -> (start facts, goal facts) each, with the reader adapter; None where no start or no goal was
    read or a clause points at a block without naming it. Each clause's answer is constrained to facts about the
    objects it names (`read_clauses`)."""
    return [facts_of(text, vb) for text in read_clauses(backend, tokenizer, texts, max_tokens, vb)]


def facts_of(sentences: list[tuple[str, list]], vb: Verbalizer) -> tuple[set[Atom], set[Atom]] | None:
    """One text's clause readings (`read_clauses`) -> (start facts, goal facts), or None (`assemble`; also when a
    clause places a block it does not name)."""
    objects = sorted(vb.config.encoded_objects)
    if any(unresolved(vb, c, objects) for _, clauses in sentences for c, _ in clauses):
        return None
    return assemble([[a for _, a in clauses] for _, clauses in sentences], vb, objects)
