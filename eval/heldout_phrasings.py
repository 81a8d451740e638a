"""Free phrasings the reader never trains on (its training phrasings are in ami_agent/reader_train.py): the agent's
free-phrasing benchmark renders generated problems with these. Kept apart on purpose; never import them in training."""

from __future__ import annotations

import random

from ami_agent.reader_train import Phrasing, free_text
from planner.worlds.blocksworld import blocksworld_names
from planner.worlds.generate import ProblemGenerator

HELDOUT = Phrasing(
    facts={
        "on": [
            "the {x} is piled on the {y}",
            "on top of the {y} you will find the {x}",
            "the {x} is placed on the {y}",
            "the {x} stands on the {y}",
        ],
        "ontable": [
            "the {x} is placed on the table",
            "the table holds the {x}",
            "the {x} stands on the table",
        ],
        "clear": ["no block covers the {x}", "the {x} is free on top"],
        "handempty": ["my hands are free", "the gripper is empty"],
        "holding": ["the gripper holds the {x}"],
    },
    goal_facts={
        "on": ["the {x} placed on the {y}", "the {x} piled on the {y}", "the {x} standing on the {y}"],
        "ontable": ["the {x} placed on the table"],
    },
    init_intros=["Starting point:", "This is what the table looks like:", "To begin with,"],
    goal_intros=["In the end I would like", "Target:", "Could you end up with"],
    refs=["the {c} cube", "the {c} piece", "the {c} block"],
)


def heldout_requests(
    domain, verbalizer, n: int = 50, seed: int = 2026, objects=(3, 5)
) -> list[tuple[str, object]]:
    """n (text, problem) pairs in held-out phrasings."""
    rng = random.Random(seed)
    gen = ProblemGenerator(domain, None, rng)
    names = blocksworld_names(domain)
    out = []
    for _ in range(n):
        p = gen.sample(rng.randint(*objects))
        text, _ = free_text(verbalizer, p.init, p.goal, HELDOUT, rng, names)
        out.append((text, p))
    return out
