"""Training the free-phrasing reader (ami_agent/reader.py): generated blocksworld requests in many phrasings, cut
into clauses as the reader cuts them, each clause labelled with its fact. The phrasings are built from parts (verbs,
prepositions, inverse forms) so that the reader learns the relation rather than a handful of sentences."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ami_agent.reader import (
    SYSTEM,
    clause_answer,
    clause_input,
    split_clauses,
    split_sentences,
)
from decoder.lora import train_text_adapter
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import Verbalizer, join_and
from planner.worlds.pddl import Atom

# Training phrasings. {x}/{y}: object references. Each fact kind has many ways of saying it, built from parts (verbs,
# prepositions, inverse forms) so that the reader learns the relation rather than a handful of sentences. Words that
# carry the held-out phrasings (eval/heldout_phrasings.py: piled, placed, stand, find, covers, free, gripper, cube,
# piece, ...) are left out on purpose, so the held-out benchmark measures how far the reading generalises.
_ON_VERBS = [
    "is", "sits", "rests", "lies", "is sitting", "is resting", "is lying", "is stacked", "has been put",
    "has been stacked", "is set", "was put", "is located", "is perched", "is balanced", "is kept", "was stacked",
    "is now", "is positioned", "has been set",
]  # fmt: skip
_ON_PREPS = ["on", "on top of", "atop", "upon"]
_ON_INVERSE = [
    "the {y} has the {x} on it", "the {y} has the {x} on top of it", "the {y} supports the {x}",
    "the {y} carries the {x}", "the {y} bears the {x}", "the {y} is under the {x}", "the {y} is beneath the {x}",
    "the {y} is below the {x}", "the {y} is underneath the {x}", "the {y} is topped by the {x}",
    "the {y} is directly under the {x}", "the {y} lies under the {x}",
    "the {y} sits beneath the {x}",
]  # fmt: skip
_ON_FRONTED = [
    "on the {y} there is the {x}", "on the {y} sits the {x}",
    "on top of the {y} is the {x}", "on the {y} is the {x}", "on the {y} rests the {x}", "atop the {y} is the {x}",
    "there is the {x} on the {y}", "there is the {x} on top of the {y}", "you can see the {x} on the {y}",
    "I see the {x} on top of the {y}", "I have the {x} on the {y}", "I have put the {x} on the {y}",
    "someone stacked the {x} on the {y}",
]  # fmt: skip
_TABLE = [
    "on the table",
    "directly on the table",
    "on the table surface",
    "down on the table",
    "flat on the table",
]
_TABLE_EXTRA = [
    "on the table there is the {x}", "on the table sits the {x}", "on the table is the {x}",
    "the table has the {x} on it", "there is the {x} on the table", "the {x} is at the bottom on the table", "I see the {x} on the table",
    "the {x} is not on any block", "the {x} is not on another block", "I have the {x} on the table",
]  # fmt: skip
_CLEAR = [
    "the {x} is clear", "the {x} is bare", "the {x} is open",
    "the {x} has nothing above it", "nothing is on the {x}", "nothing is on top of the {x}",
    "there is nothing on the {x}", "there is nothing on top of the {x}", "no block is on the {x}",
    "no block is on top of the {x}", "nothing sits on the {x}", "nothing rests on the {x}", "nothing lies on the {x}",
    "nothing is stacked on the {x}", "nothing has been put on the {x}", "the {x} has nothing on it",
    "the {x} has nothing on top of it", "the {x} has no block on it", "the {x} has no block on top",
    "the top of the {x} is empty", "the top of the {x} is clear", "the top of the {x} is open",
    "the {x} has a clear top", "the {x} has an empty top", "the {x} is at the top of its stack",
    "the {x} is the top block of its stack", "the {x} is on top of its pile", "the {x} is clear of blocks",
    "the {x} carries nothing", "the {x} supports nothing", "the {x} is unobstructed",
]  # fmt: skip
_HANDEMPTY = [
    "the hand is empty", "my hand is empty", "I am not holding anything", "I hold nothing", "nothing is in my hand",
    "nothing is in the hand", "the hand holds nothing", "the arm holds nothing", "I have nothing in my hand",
    "the hand is not holding anything", "the arm is not holding anything", "nothing is held",
    "I am holding nothing", "no block is in my hand", "the hand carries nothing",
]  # fmt: skip
_HOLDING = [
    "I am holding the {x}", "the hand is currently holding the {x}", "the {x} is in my hand", "the {x} is held",
    "I have the {x} in my hand", "the hand holds the {x}", "the arm holds the {x}", "the arm is holding the {x}",
    "the robot arm is holding the {x}", "I am carrying the {x}", "I hold the {x}", "the {x} is in the hand",
    "the {x} is being held", "I have picked up the {x}", "the hand has the {x}", "the {x} is up in my hand",
    "the hand carries the {x}", "I am lifting the {x}",
]  # fmt: skip
TRAIN_FACTS = {
    "on": [f"the {{x}} {v} {p} the {{y}}" for v in _ON_VERBS for p in _ON_PREPS]
    + ["{x} is stacked on {y}", "{x} on {y}"]
    + _ON_INVERSE
    + _ON_FRONTED,
    "ontable": [f"the {{x}} {v} {t}" for v in _ON_VERBS for t in _TABLE]
    + ["{x} sits on the table"]
    + _TABLE_EXTRA,
    "clear": _CLEAR,
    "handempty": _HANDEMPTY,
    "holding": _HOLDING,
}
_GOAL_PARTICIPLES = ["", "sitting", "resting", "lying", "stacked", "put", "set", "located", "perched", "sat"]
TRAIN_GOAL_FACTS = {
    "on": [f"the {{x}} {v} {p} the {{y}}".replace("  ", " ") for v in _GOAL_PARTICIPLES for p in _ON_PREPS]
    + [
        "{x} stacked on {y}", "{x} on {y}", "the {y} with the {x} on it", "the {y} with the {x} on top",
        "the {y} under the {x}", "the {y} beneath the {x}", "the {y} supporting the {x}",
        "the {x} to be on the {y}", "the {x} to be on top of the {y}", "the {x} to finish on the {y}",
        "the {x} to sit on the {y}", "the {x} to rest on the {y}", "the {x} moved onto the {y}",
        "the {x} is on the {y}", "the {x} is on top of the {y}", "the {x} sits on the {y}",
        "the {x} rests on top of the {y}",
    ],
    "ontable": [f"the {{x}} {v} {t}".replace("  ", " ") for v in _GOAL_PARTICIPLES for t in _TABLE[:3]]
    + [
        "the {x} to be on the table", "the {x} to finish on the table", "the {x} moved to the table",
        "the {x} down on the table", "the {x} is on the table", "the {x} lies on the table",
    ],
}  # fmt: skip
TRAIN_INIT_INTROS = [
    "As initial conditions I have that,", "Right now", "Currently,", "At the moment", "Here is the setup:",
    "Initially,", "The situation is this:", "Now", "I have some blocks.", "At present", "Here is what I have:",
    "Let me describe the blocks:", "First,", "Look:", "The current state:", "So far", "Today", "My blocks:",
    "Here is how things are:", "The blocks are arranged like this:",
]  # fmt: skip
TRAIN_GOAL_INTROS = [
    "My goal is to have that", "I want", "Please get", "Can you arrange it so I have", "The goal: I need",
    "I would like", "Make it so that there is", "End state:", "What I need is", "Goal:", "I'd love to have",
    "Please make it so that", "The aim is to have", "Could you get me", "I'm hoping for", "Afterwards I need",
    "Finally I want", "The desired result:", "Arrange things so that there is", "Then I want", "I need",
    "Please arrange", "My desired state has", "Get me to a state with",
]  # fmt: skip
TRAIN_REFS = [
    "the {c} block", "the {c} one", "{c}", "the {c} block", "the {c} box", "the {c} brick", "the {c} tile",
    "the {c} wooden block", "the {c} object", "the {c} item", "the {c} toy block", "{c} block",
]  # fmt: skip


@dataclass
class Phrasing:
    facts: dict[str, list[str]]
    goal_facts: dict[str, list[str]]
    init_intros: list[str]
    goal_intros: list[str]
    refs: list[str]


TRAIN = Phrasing(TRAIN_FACTS, TRAIN_GOAL_FACTS, TRAIN_INIT_INTROS, TRAIN_GOAL_INTROS, TRAIN_REFS)


def _ref(vb: Verbalizer, obj: str, phrasing: Phrasing, rng: random.Random) -> str:
    colour = vb.config.compact_objects.get(obj) or vb.object_phrase(obj)
    return rng.choice(phrasing.refs).format(c=colour)


def _say(template: str, args, vb, phrasing, rng) -> str:
    refs = [_ref(vb, a, phrasing, rng) for a in args]
    text = template
    for key, r in zip(("x", "y"), refs):
        text = text.replace("the {" + key + "}", r if r.startswith("the ") else "the " + r)
        text = text.replace("{" + key + "}", r)
    return text.replace("the the ", "the ")


def _compose(
    vb: Verbalizer,
    init,
    goal,
    phrasing: Phrasing,
    rng: random.Random,
    names: dict,
) -> tuple[str, list[Atom], dict[str, tuple[str, Atom]]]:
    """(the request in free words, the start facts said, words of each fact said -> (section, fact))."""
    inv = {v: k for k, v in names.items()}  # PDDL predicate -> role
    unsaid = {k for k in ("clear", "handempty") if rng.random() < 0.5}  # complete_state adds these back
    # sorted first: shuffling a set in its hash order would make the text differ from one process to the next
    said = [a for a in sorted(sorted(init), key=lambda _: rng.random()) if inv.get(a[0], a[0]) not in unsaid]
    words: dict[str, tuple[str, Atom]] = {}
    init_words = []
    for a in said:
        w = _say(rng.choice(phrasing.facts[inv.get(a[0], a[0])]), a[1:], vb, phrasing, rng)
        init_words.append(w)
        words[w.lower()] = ("start", a)
    goal_words = []
    for a in sorted(goal):
        w = _say(rng.choice(phrasing.goal_facts[inv.get(a[0], a[0])]), a[1:], vb, phrasing, rng)
        goal_words.append(w)
        words[w.lower()] = ("goal", a)
    intro = rng.choice(phrasing.init_intros)
    text = f"{intro} {join_and(init_words)}. {rng.choice(phrasing.goal_intros)} {join_and(goal_words)}."
    return text[0].upper() + text[1:], said, words


def free_text(
    vb: Verbalizer, init, goal, phrasing: Phrasing, rng: random.Random, names: dict
) -> tuple[str, str]:
    """(the request in free words, the standard statement of the facts said: what the reader should make of it)."""
    text, said, _ = _compose(vb, init, goal, phrasing, rng, names)
    return (
        text,
        f"As initial conditions I have that, {vb.facts(said)}.\nMy goal is to have that {vb.facts(goal)}.",
    )


def clause_examples(
    vb: Verbalizer, init, goal, phrasing: Phrasing, rng: random.Random, names: dict
) -> list[tuple[str, str]]:
    """A generated request cut as the reader cuts it: (clause input, answer) for every clause."""
    text, _, words = _compose(vb, init, goal, phrasing, rng, names)
    out = []
    for sentence in split_sentences(text):
        for clause in split_clauses(sentence):
            c = clause.lower()
            hit = next(((sec, a) for w, (sec, a) in words.items() if c.endswith(w)), (None, None))
            out.append((clause_input(sentence, clause), clause_answer(vb, *hit)))
    return out


def training_pairs(domain, vb: Verbalizer, n: int, objects=(3, 6), seed: int = 0) -> list[tuple[str, str]]:
    """n generated requests in the training phrasings, as (text, standard statement)."""
    rng = random.Random(seed)
    gen = ProblemGenerator(domain, None, rng)
    names = blocksworld_names(domain)
    return [
        free_text(vb, (p := gen.sample(rng.randint(*objects))).init, p.goal, TRAIN, rng, names)
        for _ in range(n)
    ]


def train_reader(
    domain,
    vb: Verbalizer,
    model_dir: Path,
    out_dir: Path,
    minutes: float = 25.0,
    max_steps: int = 100_000,
    batch: int = 16,
    rank: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    command: str = "",
    log=None,
) -> dict:
    """The recipe of checkpoints/reader: 25 minutes of clauses of generated 3-6 block requests."""
    rng = random.Random(seed)
    gen = ProblemGenerator(domain, None, rng)
    names = blocksworld_names(domain)
    pool: list[tuple[str, str]] = []

    def make_pair() -> tuple[str, str]:
        """One clause of a freshly generated request (requests are cut into clauses as the reader cuts them)."""
        while not pool:
            p = gen.sample(rng.randint(3, 6))
            pool.extend(clause_examples(vb, p.init, p.goal, TRAIN, rng, names))
            rng.shuffle(pool)
        return pool.pop()

    extra = {
        "objects": [3, 6],
        "training_phrasings": "ami_agent/reader_train.py (TRAIN)",
        "evaluation_phrasings": "eval/heldout_phrasings.py (never trained on)",
        "unit": "one clause (with its sentence) -> one fact",
    }
    return train_text_adapter(
        "reader",
        make_pair,
        model_dir,
        out_dir,
        minutes,
        max_steps,
        batch,
        rank,
        lr,
        seed,
        SYSTEM,
        command,
        extra,
        log,
    )
