"""The free-phrasing reader: a LoRA adapter on the base model that rewrites a description in the user's own words
("the red one sits on the blue one") into the world's standard statement ("As initial conditions I have that, the
red block is on top of the blue block ... My goal is to have that ..."), which the template reader then parses and
checks. The adapter only rephrases what was said; facts people leave unsaid in blocksworld-like worlds (which blocks
are clear, whether the hand is empty) are completed by `complete_state`.

Training phrasings live here; the phrasings the reader is evaluated on live apart, in eval/heldout_phrasings.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from planner.worlds.generate import ProblemGenerator, blocksworld_names
from planner.worlds.nl import Verbalizer, join_and

SYSTEM = "Rewrite the user's description of blocks in the standard form."

# Training phrasings. {x}/{y}: object references. Each fact kind has several ways of saying it.
TRAIN_FACTS = {
    "on": [
        "the {x} is on top of the {y}",
        "the {x} sits on the {y}",
        "the {x} rests on top of the {y}",
        "{x} is stacked on {y}",
        "the {y} has the {x} on it",
        "there is the {x} on the {y}",
        "the {x} is on the {y}",
        "the {x} is atop the {y}",
        "the {x} lies on the {y}",
        "the {y} supports the {x}",
        "on the {y} there is the {x}",
        "the {x} is sitting on top of the {y}",
        "the {y} is under the {x}",
        "the {x} has been put on the {y}",
    ],
    "ontable": [
        "the {x} is on the table",
        "the {x} lies on the table",
        "the {x} is directly on the table",
        "{x} sits on the table",
        "the {x} rests on the table",
        "the {x} is lying on the table",
        "on the table there is the {x}",
        "the {x} is down on the table",
    ],
    "clear": [
        "the {x} is clear",
        "nothing is on the {x}",
        "the {x} has nothing on top of it",
        "the top of the {x} is empty",
        "there is nothing on the {x}",
    ],
    "handempty": [
        "the hand is empty",
        "my hand is empty",
        "I am not holding anything",
        "I hold nothing",
        "nothing is in my hand",
    ],
    "holding": [
        "I am holding the {x}",
        "the hand is currently holding the {x}",
        "the {x} is in my hand",
        "I have the {x} in my hand",
        "the hand holds the {x}",
    ],
}
TRAIN_GOAL_FACTS = {
    "on": [
        "the {x} on top of the {y}",
        "the {x} on the {y}",
        "{x} stacked on {y}",
        "the {x} sitting on the {y}",
        "the {x} atop the {y}",
        "the {x} resting on the {y}",
        "the {x} lying on the {y}",
    ],
    "ontable": ["the {x} on the table", "the {x} resting on the table", "the {x} lying on the table"],
}
TRAIN_INIT_INTROS = [
    "As initial conditions I have that,",
    "Right now",
    "Currently,",
    "At the moment",
    "Here is the setup:",
    "Initially,",
    "The situation is this:",
    "Now",
    "I have some blocks.",
]
TRAIN_GOAL_INTROS = [
    "My goal is to have that",
    "I want",
    "Please get",
    "Can you arrange it so I have",
    "The goal: I need",
    "I would like",
    "Make it so that there is",
    "End state:",
    "What I need is",
]
TRAIN_REFS = ["the {c} block", "the {c} one", "{c}", "the {c} block", "the {c} box", "the {c} brick"]


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


def free_text(
    vb: Verbalizer, init, goal, phrasing: Phrasing, rng: random.Random, names: dict
) -> tuple[str, str]:
    """(the request in free words, what the reader should answer: the standard statement of the facts said)."""
    inv = {v: k for k, v in names.items()}  # PDDL predicate -> role
    unsaid = {k for k in ("clear", "handempty") if rng.random() < 0.5}  # complete_state adds these back
    said = [a for a in sorted(init, key=lambda _: rng.random()) if inv.get(a[0], a[0]) not in unsaid]
    init_words = [
        _say(rng.choice(phrasing.facts[inv.get(a[0], a[0])]), a[1:], vb, phrasing, rng) for a in said
    ]
    goal_words = [
        _say(rng.choice(phrasing.goal_facts[inv.get(a[0], a[0])]), a[1:], vb, phrasing, rng)
        for a in sorted(goal)
    ]
    intro = rng.choice(phrasing.init_intros)
    text = f"{intro} {join_and(init_words)}. {rng.choice(phrasing.goal_intros)} {join_and(goal_words)}."
    target = (
        f"As initial conditions I have that, {vb.facts(said)}.\nMy goal is to have that {vb.facts(goal)}."
    )
    return text[0].upper() + text[1:], target


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


def training_pairs(domain, vb: Verbalizer, n: int, objects=(3, 6), seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    gen = ProblemGenerator(domain, None, rng)
    names = blocksworld_names(domain)
    return [
        free_text(vb, (p := gen.sample(rng.randint(*objects))).init, p.goal, TRAIN, rng, names)
        for _ in range(n)
    ]


READER_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "reader"
ADAPTER = "reader"


def prompt_ids(tokenizer, text: str) -> list[int]:
    from decoder.lora import chat_prompt_ids

    return chat_prompt_ids(tokenizer, text, SYSTEM)


def train_reader(
    domain,
    vb: Verbalizer,
    model_dir: Path,
    out_dir: Path,
    minutes: float = 25.0,
    max_steps: int = 100_000,
    batch: int = 8,
    rank: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    command: str = "",
    log=None,
) -> dict:
    from decoder.lora import train_text_adapter

    rng = random.Random(seed)
    gen = ProblemGenerator(domain, None, rng)
    names = blocksworld_names(domain)

    def make_pair() -> tuple[str, str]:
        p = gen.sample(rng.randint(3, 6))
        return free_text(vb, p.init, p.goal, TRAIN, rng, names)

    extra = {
        "objects": [3, 6],
        "training_phrasings": "ami_agent/reader.py (TRAIN)",
        "evaluation_phrasings": "eval/heldout_phrasings.py (never trained on)",
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


def rewrite(backend, tokenizer, texts: list[str], max_tokens: int = 400) -> list[str]:
    """Free text -> the standard statement, with the reader adapter (greedy)."""
    from decoder.backends import Request, Sampling

    reqs = [Request(prompt_ids=prompt_ids(tokenizer, t)) for t in texts]
    return [o.text for o in backend.generate(reqs, ADAPTER, Sampling(max_tokens=max_tokens))]
