"""The procedural generator of blocks requests that the reader (ami_agent/reader.py) trains on: a random table, a
goal and sometimes rules, said the many ways people say them, paired with the reading the reader should write.

A request is built from chunks. Each chunk says a few facts (a tower from the bottom up or from the top down, a
stack named as a group or listed under a header, how a tower was built, a block by itself, "the rest are on the
table", a chain of pronouns, inverse and negated forms, the hand) or none (a negated distractor, "I don't care
where green ends up", chatter) and carries the items it says, in the order it says them; the reading lists them in
that order, so the reader copies what the text says rather than re-sorting it. The goal may point back at the start
("move that one onto the latter": the blocks of the start's last sentence), build up a chain ("green on white, then
violet on top of it"), swap a two-block stack, repeat a start fact in passing ("put gold on blue, which is on the
table": no goal), or ask, with the start after it ("what steps would put green on yellow, if ...?"). Noise is
layered on top: typos in names and words, no capitals, no punctuation, bullets, chatter, the goal before the start.
A few requests are incomplete (a goal block never placed, no goal, no start), contradictory or not about planning
at all, so that the reader writes what was said and the agent's checks (not the reader) decide what to ask.

The reading's language (ami_agent/reader.py parses it): `start: red on blue; blue on table; holding green`
(also `all on table`: every other block named is on the table),
`goal: blue on yellow; red clear` (also `reverse`, `reverse red`, `all on table`), `rules: never red on table;
never red on blue; never touch red; never hold red; never use unstack; keep red on blue; keep red on table`,
or `none` for a message that is not a planning request.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

OTHER_COLOURS = [
    "purple", "pink", "brown", "grey", "teal", "beige", "indigo", "maroon", "navy", "lime", "turquoise",
    "crimson", "amber", "olive", "peach", "ivory",
]  # fmt: skip
OPERATORS = {"pick-up", "put-down", "stack", "unstack"}


@dataclass
class Table:
    """A state in colour names: towers bottom to top, the held block (or None)."""

    towers: list[list[str]]
    held: str | None = None

    @property
    def blocks(self) -> list[str]:
        return [b for t in self.towers for b in t] + ([self.held] if self.held else [])

    def items(self) -> list[str]:
        out = []
        for t in self.towers:
            out.append(f"{t[0]} on table")
            out += [f"{t[i]} on {t[i - 1]}" for i in range(1, len(t))]
        if self.held:
            out.append(f"holding {self.held}")
        return out


@dataclass
class Request:
    text: str
    start: list[str] = field(default_factory=list)
    goal: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    kind: str = "plan"  # plan | incomplete | contradiction | chat
    table: Table | None = None  # the true start
    goal_truth: list[str] = field(default_factory=list)  # the goal's facts, macros expanded

    @property
    def reading(self) -> str:
        return reading_text(self.start, self.goal, self.rules)


def reading_text(start: list[str], goal: list[str], rules: list[str]) -> str:
    if not start and not goal and not rules:
        return "none"
    lines = [f"start: {'; '.join(start)}", f"goal: {'; '.join(goal)}"]
    if rules:
        lines.append(f"rules: {'; '.join(rules)}")
    return "\n".join(lines)


# ---- how a block is named ----------------------------------------------------------------------------------------
NOUNS = ["block", "block", "block", "one", "cube", "brick", "box", "piece", "blok", "square", "wooden block"]


class Namer:
    """Refers to blocks: 'the red block', 'red', 'the red one', 'Red', typos in the colour now and then."""

    def __init__(self, rng: random.Random, typo: float):
        self.rng = rng
        self.noun = rng.choice(NOUNS + ["", ""])  # a writer keeps mostly to one noun
        self.article = rng.random() < 0.75
        self.typo = typo
        self.positions: dict[
            str, str
        ] = {}  # colour -> "the top one" etc., where the start makes it unambiguous
        self.once: dict[str, str] = {}  # colour -> "it", "the latter": its next mention only (in the goal)
        self.said: list[str] = []  # every name given, in the order asked

    def __call__(self, colour: str, article: bool | None = None) -> str:
        if colour in self.once:
            return self.once.pop(colour)
        self.said.append(self._name(colour, article))
        return self.said[-1]

    def _name(self, colour: str, article: bool | None) -> str:
        r = self.rng
        if colour in self.positions and r.random() < 0.35:
            return self.positions[colour]
        c = misspell(colour, r) if r.random() < self.typo and colour not in OTHER_COLOURS else colour
        noun = self.noun if r.random() < 0.8 else r.choice(NOUNS + [""])
        words = f"{c} {noun}".strip()
        use_article = self.article if article is None else article
        if noun and r.random() < 0.06:
            return f"a {words}"
        if use_article or (noun and r.random() < 0.7):
            return f"the {words}"
        return words


SOUNDALIKE = [("ue", "eu"), ("ow", "o"), ("ll", "l"), ("an", "n"), ("ite", "it"), ("ck", "k"), ("ee", "e"),
              ("y", "i"), ("er", "ar"), ("ge", "j"), ("ta", "te"), ("le", "el"), ("ble", "bel")]  # fmt: skip


def misspell(word: str, rng: random.Random) -> str:
    """A typo: a swapped, dropped, doubled or wrong letter, or a sound-alike spelling ('bleu', 'yelow', 'tabel')."""
    if len(word) < 3:
        return word
    if rng.random() < 0.3:
        pairs = [(a, b) for a, b in SOUNDALIKE if a in word[1:]]
        if pairs:
            a, b = rng.choice(pairs)
            k = word.index(a, 1)
            return word[:k] + b + word[k + len(a) :]
    i = rng.randrange(1, len(word) - 1)
    op = rng.randrange(4)
    if op == 0:  # swap
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:  # drop
        return word[:i] + word[i + 1 :]
    if op == 2:  # double
        return word[:i] + word[i] + word[i:]
    keys = "aeiou" if word[i] in "aeiou" else "rtnslmdk"
    return word[:i] + rng.choice(keys) + word[i + 1 :]


# ---- phrase banks ---------------------------------------------------------------------------------------------------
ON = [
    "{x} is on {y}", "{x} is on top of {y}", "{x} sits on {y}", "{x} sits on top of {y}", "{x} rests on {y}",
    "{x} is stacked on {y}", "{x} is sitting on {y}", "{x} is resting on top of {y}", "{x} lies on {y}",
    "{x} is placed on {y}", "{x} is piled on {y}", "{x} stands on {y}", "{x} is atop {y}", "{x} is upon {y}",
    "{x} has been put on {y}", "{x} is set on {y}", "{x} is balanced on {y}", "{x} is perched on top of {y}",
    "{x} on {y}", "{x} on top of {y}", "{x} is directly on {y}", "{x} is right on top of {y}",
    "{x} is located on {y}", "{x} was stacked on {y}", "{x} is currently on {y}", "{x}'s on {y}",
    "{x} is on the top of {y}", "{x} is stacked onto {y}", "{x} is put on {y}", "{x} ontop of {y}",
    "{x} over {y}", "{x} is above {y}", "{x} is directly above {y}", "{x} is covering {y}", "{x} covers {y}",
    "{x} isn't on the table, it's on {y}", "{x} is not on the table but on {y}", "{x} is not on the table; it sits on {y}",
    "{x} / {y}", "{x} atop {y}", "{x} is positioned upon {y}", "{x} is resting upon {y}", "{x} is found on {y}",
    "{x} is on top of {y}", "{x} - on {y}", "{x} -> {y}", "{x} sits atop {y}",
    "{x} isn't on the table: it's on {y}", "{x} is not on the table, it is on {y}", "{x} went on top of {y}",
    "{x} ended up on {y}", "{x} landed on {y}", "{x} is up on {y}", "{x} is sat on {y}",
]  # fmt: skip
ON_INVERSE = [
    "{y} has {x} on it", "{y} has {x} on top of it", "{y} has {x} on top", "{y} supports {x}",
    "{y} carries {x}", "{y} holds up {x}", "{y} is under {x}", "{y} is beneath {x}", "{y} is below {x}",
    "{y} is underneath {x}", "{y} is topped by {x}", "{y} is covered by {x}", "{y} sits under {x}",
    "on {y} there is {x}", "on top of {y} is {x}", "on {y} sits {x}", "on top of {y} you'll find {x}",
    "under {x} is {y}", "beneath {x} there is {y}", "{y} has {x} sitting on it", "{y} is below {x}",
    "there's {x} on {y}", "there is {x} on top of {y}", "I see {x} on {y}", "I have {x} on {y}",
    "I put {x} on {y}", "someone stacked {x} on {y}", "{x} has been stacked on top of {y}",
    "{y} isn't clear: {x} is on it", "{y} is not clear, {x} sits on it", "{y} is not free: {x} is on top of it",
    "{y} is at the bottom with {x} on it", "{y} has got {x} on top", "{y} is under {x}, not the other way round",
    "{y} is at the bottom of a stack with {x} on it", "{y} is the base of a stack with {x} on top",
    "{y} is at the bottom of a little stack, {x} on it", "{y} is the bottom of a pile with {x} on it",
]  # fmt: skip
TABLE = [
    "{x} is on the table", "{x} sits on the table", "{x} is on the table by itself", "{x} is by itself",
    "{x} is alone on the table", "{x} rests on the table", "{x} is lying on the table", "{x} stands alone",
    "{x} is directly on the table", "{x} is on the floor", "{x} is on the ground", "{x} is placed on the table",
    "{x} is flat on the table", "{x} is on its own", "{x} sits alone", "{x} is just on the table",
    "{x} is off to the side on the table", "{x} isn't on anything", "{x} is not on any block",
    "{x} is not stacked on anything", "{x} is on nothing but the table", "{x} on table", "{x} on the table",
    "{x} is down on the table", "{x} is sitting by itself", "{x} is standing on the table",
    "the table has {x} on it", "on the table there is {x}", "there is {x} on the table",
    "I see {x} on the table", "{x} is on the table, all alone", "{x} is loose on the table",
    "{x} lies on the table", "{x} is a stack of its own", "{x} is a tower by itself", "{x} is alone",
    "{x} has nothing under it but the table", "{x} is not on top of anything", "{x} sits on the table on its own",
    "{x} is the only block on its spot", "{x} is lying flat", "{x} tbl", "{x} is positioned on the table",
    "{x} doesn't sit on anything but the table", "{x} isn't on any other block", "{x} is not stacked",
    "{x} is all alone on the table", "{x} rolled onto the table", "{x} is off by itself", "{x} is just lying there",
]  # fmt: skip
TABLE_MANY = [
    "{xs} are on the table", "{xs} are all on the table", "{xs} are each on the table",
    "{xs} are lying on the table", "{xs} sit on the table", "{xs} are by themselves",
    "{xs} are on the table separately", "{xs} are spread out on the table", "{xs} are each by themselves",
    "on the table there are {xs}", "the table has {xs} on it", "{xs} are not on anything",
    "{xs} are just sitting on the table", "{xs} are on their own", "{xs} are on the table, not stacked",
    "table: {xs}", "on the table: {xs}", "{xs} all on table", "{xs} are lying flat, side by side",
    "{n} blocks, all on the table: {xs}", "{n} blocks on the table: {xs}",
    "there are {n} blocks, {xs}, all on the table",
]  # fmt: skip
NONE_STACKED = [
    "nothing is on top of anything", "nothing is stacked", "none of them are stacked", "there are no stacks",
    "no block is on another block", "they are all on the table", "all of them are on the table",
    "every block is on the table", "they're all just lying on the table", "nothing is stacked at all",
]  # fmt: skip
CLEAR = [
    "{x} is clear", "nothing is on {x}", "nothing is on top of {x}", "there is nothing on {x}",
    "{x} has nothing on it", "{x} has nothing on top", "{x} is free", "{x} is uncovered", "{x} is open on top",
    "the top of {x} is clear", "no block is on {x}", "{x} has a clear top", "{x} is at the top of its stack",
    "{x} is on top of its stack", "{x} is the top block", "{x} is free on top", "nothing sits on {x}",
    "{x} is not under anything", "{x} isn't under any block", "{x} has nothing above it", "{x} is the top of its stack",
]  # fmt: skip
HAND_EMPTY = [
    "the hand is empty", "my hand is empty", "I'm not holding anything", "I hold nothing",
    "nothing is in my hand", "the hand holds nothing", "the gripper is empty", "the arm is empty",
    "my hands are free", "the robot hand is empty", "I am holding nothing", "the claw is empty",
    "nothing is being held", "the hand is free",
]  # fmt: skip
HOLDING = [
    "I'm holding {x}", "I am holding {x}", "the hand holds {x}", "{x} is in my hand", "{x} is in the hand",
    "the hand is holding {x}", "I have {x} in my hand", "the gripper holds {x}", "the arm is holding {x}",
    "I picked up {x}", "I have {x} in hand", "{x} is being held", "I'm carrying {x}", "the claw has {x}",
    "{x} is held", "my hand has {x}", "I just lifted {x}", "{x} is up in the air in my hand",
    "hand: {x}", "the robot is gripping {x}", "the robot has {x}", "the gripper is clutching {x}", "in hand: {x}",
    "the robot froze while holding {x}", "{x} is stuck in the gripper", "the arm is still holding {x}",
    "the robot is holding {x} already", "{x} is up in the robot's hand", "the robot grabbed {x} and kept it",
]  # fmt: skip
BOTTOM_UP = [
    "from bottom to top: {list}", "from the bottom up it is {list}", "from bottom to top it's {list}",
    "bottom to top: {list}", "a stack of {list}, bottom to top", "a tower of {list} from the bottom up",
    "{list} (bottom to top)", "{list}, going up", "{list} stacked in that order from the table up",
    "starting at the bottom: {list}", "a tower, bottom first: {list}", "{list} from bottom to top",
    "one stack going up: {list}", "{list}, bottom to top", "lowest block first: {list}",
    "from the table up: {list}",
]  # fmt: skip
TOP_DOWN = [
    "from top to bottom: {list}", "from the top down it is {list}", "top to bottom: {list}",
    "a stack of {list}, top to bottom", "{list} (top to bottom)", "{list} from top to bottom",
    "starting at the top: {list}", "a tower, top first: {list}", "{list}, going down",
    "highest block first: {list}", "from top to bottom it's {list}, then the table", "top first: {list}",
    "from the top: {list}, then the table", "{list} from the top down to the table",
]  # fmt: skip
THEN_WORDS = ["then", "then", "and then", "next", "above that", "after that", "on that"]
CHATTER = [
    "Hi!", "Hello there.", "Hey.", "Thanks!", "Thanks in advance.", "I'm stuck.", "This is for a puzzle.",
    "My kid left these on the table.", "Please help.", "Quick question.", "I've been trying for a while.",
    "It's for a class.", "Any help is appreciated.", "Bear with me.", "Ok so.", "Hmm.", "Good morning!",
    "Cheers.", "I'm not sure how to do this.", "Let me explain.", "Sorry for the long message.",
    "The blocks are wooden.", "I'm new to this.", "This looks easy but I keep failing.", "lol",
    "It's a rainy day and I'm bored.", "Thank you so much.", "Be careful please.", "Here goes.",
    "The robot arm beeps every few seconds, no idea why.", "I tried it by hand and knocked everything over.",
    "This is my first time using this thing.", "My coffee is getting cold, so quick answers appreciated.",
    "The instructions were in two languages and I read neither.", "We have a demo at 3 pm.",
    "The lab lights keep flickering, ignore that.", "My daughter is five and very serious about this.",
    "I teach a class of 20 kids and this is for tomorrow.", "Not sure if this is the right place to ask.",
    "Sorry, long day.", "The printer is jammed again, unrelated.", "It's the third time I'm asking this week.",
    "My boss wants this done by Friday.", "Apologies for the wall of text.", "I'm using the robot arm from the lab.",
]  # fmt: skip
START_INTROS = [
    "", "", "", "Right now", "Currently,", "At the moment", "Here is the setup:", "Initially,", "Now",
    "The situation:", "I have some blocks.", "Here's what I have:", "Starting position:", "Current state:",
    "On my table", "Setup:", "This is how things are:", "The blocks are like this:", "To begin with,",
    "At the start", "Starting state:", "Start:", "Before:", "What I've got:", "My table right now:",
    "As initial conditions I have that,", "Okay so right now", "The table looks like this:", "So,",
]  # fmt: skip
GOAL_INTROS = [
    "I want", "I'd like", "Please get", "Can you make it so that", "My goal is", "Goal:", "I need",
    "The goal is", "End state:", "I want to end up with", "What I want is", "Target:", "I'm hoping for",
    "Please arrange it so that", "Make it so", "At the end I want", "Finally I'd like", "Could you get",
    "The desired state:", "In the end,", "Afterwards", "When you're done,", "I would like", "Desired:",
    "After:", "Want:", "My goal is to have that", "Help me get", "How do I get", "How can I get",
    "What moves get", "Can you get", "Is there a way to get", "I'm trying to get",
    "What's the fastest way to get", "Which moves get", "What steps would get", "How would you get",
    "What's the quickest way to get", "What do I need to do to get",
]  # fmt: skip
GOAL_ON = [
    "{x} on {y}", "{x} on top of {y}", "{x} to be on {y}", "{x} sitting on {y}", "{x} stacked on {y}",
    "{x} onto {y}", "{x} is on {y}", "{x} should be on {y}", "{x} ends up on {y}", "{x} resting on {y}",
    "{x} to end up on top of {y}", "{x} placed on {y}", "{x} on the top of {y}", "{y} under {x}",
    "{y} with {x} on it", "{y} to have {x} on top", "{y} beneath {x}", "{x} over {y}", "{x} above {y}",
    "{x} directly on {y}",
]  # fmt: skip
GOAL_ON_VERB = [
    "put {x} on {y}", "stack {x} on {y}", "place {x} on top of {y}", "move {x} onto {y}", "get {x} onto {y}",
    "set {x} on {y}", "put {x} on top of {y}", "move {x} to {y}", "have {x} sit on {y}", "stack {x} onto {y}",
    "place {x} onto {y}", "pile {x} on {y}", "bring {x} on top of {y}", "get {x} on top of {y}",
]  # fmt: skip
GOAL_TABLE = [
    "{x} on the table", "{x} to be on the table", "{x} sitting on the table", "{x} down on the table",
    "{x} by itself on the table", "{x} on the floor", "{x} standing alone", "{x} alone on the table",
]  # fmt: skip
GOAL_TABLE_VERB = [
    "put {x} on the table", "put {x} down on the table", "move {x} to the table", "set {x} on the table",
    "get {x} onto the table", "take {x} off and leave it on the table", "place {x} on the table",
]  # fmt: skip
GOAL_CLEAR = [
    "{x} clear", "nothing on {x}", "nothing on top of {x}", "{x} to be clear", "{x} with nothing on it",
    "{x} uncovered", "{x} free on top", "the top of {x} empty",
]  # fmt: skip
GOAL_HOLD = ["{x} in my hand", "the hand holding {x}", "{x} held", "to be holding {x}", "{x} in the gripper"]
TOWER_GOAL = [
    "a tower with {b} at the bottom, {rest}", "one stack: {list} from bottom to top",
    "a single tower of {list}, bottom to top", "build a tower: {list} (bottom to top)",
    "a stack going {list} from the table up", "{list} stacked from the bottom up",
    "a tower, bottom to top: {list}", "to build a tower {list}, bottom first",
    "a tower that is {list} from bottom to top", "{b} at the bottom, {rest}",
    "{list} from the bottom up", "from the bottom up: {list}", "bottom up: {list}", "from the ground up, {list}",
    "it to be {list}, bottom to top", "a stack of {list}, starting from the table",
    "a tower with {b} as the base, {rest}", "a tower of {n}: from the bottom, {list}",
    "all {n} in one tower, bottom up: {list}", "a {n}-block tower, {list} from the bottom",
]  # fmt: skip
TOWER_GOAL_TOP = [
    "a tower with {t} on top, {rest}", "one stack: {list} from top to bottom",
    "a tower, top to bottom: {list}", "{list} stacked from the top down",
    "top down: {list}", "from the top down, {list}", "a tower of {chain}", "one stack, {chain}",
    "a single tower: {chain}", "{chain}, all in one tower",
]  # fmt: skip
REVERSE = [
    "reverse my tower", "reverse the stack", "flip the tower upside down", "turn the stack upside down",
    "invert the tower", "the same tower but upside down", "the stack in the opposite order",
    "to reverse the order of the stack", "reverse the order of the blocks in the tower", "flip the stack",
    "the tower the other way round", "the tower flipped",
]  # fmt: skip
REVERSE_ONE = [
    "reverse the stack with {x} in it", "flip the tower that has {x}", "turn the stack with {x} upside down",
    "reverse the tower containing {x}", "invert {x}'s stack",
]  # fmt: skip
SWAP = [
    "swap {x} and {y}",
    "switch {x} and {y} around",
    "{x} and {y} swapped",
    "{x} and {y} the other way round",
]
REVERSE_SHORT = [
    "the top one at the bottom and the bottom one on top", "the bottom one on top and the top one at the bottom",
    "swap the top and bottom blocks", "the top and the bottom swapped",
    "the top block at the bottom and the bottom block on top",
]  # fmt: skip
GOAL_ON_IT = [
    "{x} on top of it",
    "{x} on it",
    "{x} on top of that",
    "{x} on that one",
    "then {x} on top of it",
]
GOAL_ON_IT_VERB = [
    "then put {x} on top of it", "put {x} on it", "then stack {x} on that", "put {x} on top of that one",
    "and then {x} on top",
]  # fmt: skip
GOAL_ON_WHICH = [
    "{x} on {y}, which is on the table", "{x} on top of {y} (it's on the table)", "{x} on {y}, which sits on the table",
    "{x} on {y}; {it} is on the table by itself",
]  # fmt: skip
GOAL_ON_WHICH_VERB = [
    "put {x} on {y}, which is on the table", "move {x} onto {y} (that one's on the table)",
    "stack {x} on {y}, which is just lying on the table", "put {x} on {y} - {it} is on the table",
]  # fmt: skip
GOAL_ON_THEM = ["then put {x} on top of them", "{x} on top of those two", "then {x} on top of both"]
ALL_TABLE = [
    "everything on the table", "all the blocks on the table", "every block on the table",
    "all of them on the table", "unstack everything", "everything spread out on the table",
    "no stacks at all, everything on the table", "all blocks by themselves on the table",
    "take all the stacks apart", "knock everything down to the table",
]  # fmt: skip
RULES = {
    "never {x} on table": [
        "never put {x} on the table",
        "{x} must never touch the table",
        "don't put {x} down on the table",
        "do not set {x} on the table",
        "{x} can't go on the table",
        "{x} should never be on the table",
        "without ever putting {x} on the table",
        "never place {x} on the table",
        "keep {x} off the table",
    ],
    "never {x} on {y}": [
        "never put {x} on {y}",
        "{x} must never go on {y}",
        "don't stack {x} on {y}",
        "do not put {x} on {y}",
        "{x} should never be on top of {y}",
        "never place {x} onto {y}",
        "avoid putting {x} on {y}",
    ],
    "never touch {x}": [
        "don't touch {x}",
        "do not move {x}",
        "leave {x} where it is",
        "{x} must not be moved",
        "never touch {x}",
        "don't move {x} at all",
        "{x} stays put",
        "without touching {x}",
        "{x} must stay where it is",
        "leave {x} alone",
        "do not touch {x}",
        "keep your hands off {x}",
    ],
    "never hold {x}": [
        "never pick up {x}",
        "don't pick up {x}",
        "{x} must never be held",
        "never hold {x}",
        "don't grab {x}",
        "do not lift {x}",
        "{x} should never be in the hand",
    ],
    "never use unstack": [
        "without using unstack",
        "don't unstack anything",
        "no unstacking",
        "never unstack a block",
        "do not use the unstack action",
        "you may not unstack",
    ],
    "never use stack": [
        "don't stack anything",
        "never stack a block on another",
        "no stacking",
        "without using stack",
    ],
    "never use put-down": [
        "never put any block down on the table",
        "no putting blocks down",
        "don't use put down",
        "never put a block down",
        "without using put-down",
        "do not put anything down on the table",
    ],
    "never use pick-up": [
        "don't pick anything up off the table",
        "never pick up a block from the table",
        "no pick-up",
        "without using pick up",
        "do not lift blocks off the table",
    ],
    "keep {x} on {y}": [
        "keep {x} on {y}",
        "{x} must stay on {y}",
        "{x} has to stay on top of {y} the whole time",
        "leave {x} on {y} throughout",
        "{x} stays on {y}",
        "make sure {x} is always on {y}",
    ],
    "keep {x} on table": [
        "keep {x} on the table",
        "{x} must stay on the table",
        "{x} stays on the table",
        "{x} has to remain on the table",
        "leave {x} on the table the whole time",
    ],
}
RULE_INTROS = ["", "", "But", "Also,", "One rule:", "Constraint:", "Important:", "Oh and", "Please", "Note:"]
NOT_PLANNING = [
    "what is a block tower?", "why do kids like stacking blocks?", "tell me a joke about blocks",
    "how heavy is a wooden block usually?", "what colours do toy blocks come in?", "hello, how are you?",
    "what can you do?", "who invented building blocks?", "thanks, that was helpful!", "what is the blocks world?",
    "can you explain what planning means?", "is red a nice colour for a block?", "what's your name?",
    "how many blocks can a person stack?", "do you like puzzles?", "good night!",
    "what's the difference between stack and put down?", "what does unstack mean exactly?",
    "why can the hand only hold one block at a time?", "is the blocks world still a useful problem?",
    "how does your planner work?", "did the blocks world really start in the 1970s?",
    "can you explain how you plan a tower?", "no task today, I'm just curious how you work",
    "what's the tallest tower anyone ever built?", "do you get bored of moving blocks?",
]  # fmt: skip
DONT_CARE = [
    "{x} can go anywhere", "I don't care where {x} ends up", "{x} can end up wherever", "{x} doesn't matter",
    "{x} can be anywhere at the end", "wherever {x} ends up is fine", "don't worry about where {x} goes",
    "{x} can stay or go, whatever is easiest",
]  # fmt: skip
DONT_CARE_MANY = [
    "{xs} can end up wherever", "I don't care where {xs} end up", "{xs} can go anywhere",
    "the rest can go wherever", "whatever ends up on the table is fine", "everything else can be anywhere",
    "the other blocks don't matter", "I don't mind where the others go",
]  # fmt: skip
REST_ON_TABLE = [
    "everything else is on the table", "the rest are on the table", "the other blocks are on the table",
    "all the others are on the table", "the remaining blocks are on the table by themselves",
    "everything else is just lying on the table", "the others sit on the table",
]  # fmt: skip
ALL_ON_TABLE_START = [
    "they're all on the table now", "all {n} are on the table", "everything is on the table right now",
    "all the blocks are on the table", "every block is on the table", "they're all lying on the table",
    "nothing is stacked, everything's on the table", "everything is flat on the table",
    "all {n} blocks are on the table, none stacked", "the start is all of them on the table",
    "right now they are all on the table", "at the moment all {n} sit on the table",
]  # fmt: skip
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
NOT_ON = ["{x} is not on {y}", "{x} isn't on {y}", "{x} is not on top of {y}", "{x} is not sitting on {y}"]
NOT_HELD = [
    "{x} is not in the hand",
    "the hand isn't holding {x}",
    "{x} isn't being held",
    "nobody is holding {x}",
]
NARRATIVE_UP = [
    "first {b} went down, {rest}", "someone put {b} on the table, {rest}", "{b} was put down first, {rest}",
    "the robot dropped {b} onto the table, {rest}", "we started with {b} on the table, {rest}",
]  # fmt: skip
NARRATIVE_NEXT = [
    "then {x} went on it", "then {x} on top of it", "then they put {x} on that", "then {x} was stacked on it",
    "after that {x} went on top",
]  # fmt: skip
NARRATIVE_LAST = [
    "and finally {x} on the very top",
    "and last {x} on top",
    "and then {x} on top of everything",
]


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) == 1:
        return parts[0]
    style = rng.random()
    if style < 0.6:
        return ", ".join(parts[:-1]) + (", and " if rng.random() < 0.3 else " and ") + parts[-1]
    if style < 0.8:
        return ", ".join(parts)
    return " and ".join(parts)


def _fill(template: str, name: Namer, x: str | None = None, y: str | None = None) -> str:
    out = template
    if x is not None:
        out = out.replace("{x}", name(x))
    if y is not None:
        out = out.replace("{y}", name(y))
    return out


# ---- saying a table -------------------------------------------------------------------------------------------------
def say_tower(tower: list[str], name: Namer, rng: random.Random) -> tuple[str, list[str]]:
    """One tower (bottom to top, at least two blocks): text and the items it says, in the order it says them."""
    n = len(tower)
    style = rng.randrange(10)
    if style == 9:  # first X went down, then Y on it, and finally Z on the very top
        names = [name(b) for b in tower]
        rest = [rng.choice(NARRATIVE_NEXT).replace("{x}", nm) for nm in names[1:-1]]
        rest.append(rng.choice(NARRATIVE_NEXT + NARRATIVE_LAST).replace("{x}", names[-1]))
        text = rng.choice(NARRATIVE_UP).replace("{b}", names[0]).replace("{rest}", ", ".join(rest))
        return text, [f"{tower[0]} on table"] + [f"{tower[i]} on {tower[i - 1]}" for i in range(1, n)]
    if style == 8:  # X is on Y, which is on Z, which is on the table
        names = [name(b) for b in reversed(tower)]
        parts = [f"{names[0]} {rng.choice(['is on', 'sits on', 'is on top of'])} {names[1]}"]
        parts += [
            f"{rng.choice(['which is on', 'which sits on', 'that is on', 'itself on'])} {nm}"
            for nm in names[2:]
        ]
        items = [f"{tower[i]} on {tower[i - 1]}" for i in range(n - 1, 0, -1)]
        if rng.random() < 0.6:
            parts.append(
                rng.choice(["which is on the table", "which sits on the table", "that is on the table"])
            )
            items.append(f"{tower[0]} on table")
        return ", ".join(parts), items
    if style == 0:  # bottom up list
        names = [name(b, article=rng.random() < 0.3) for b in tower]
        text = rng.choice(BOTTOM_UP).replace("{list}", _join(names, rng))
        items = [f"{tower[0]} on table"] + [f"{tower[i]} on {tower[i - 1]}" for i in range(1, n)]
        return text, items
    if style == 1:  # top down list
        names = [name(b, article=rng.random() < 0.3) for b in reversed(tower)]
        text = rng.choice(TOP_DOWN).replace("{list}", _join(names, rng))
        items = [f"{tower[i]} on {tower[i - 1]}" for i in range(n - 1, 0, -1)] + [f"{tower[0]} on table"]
        return text, items
    if style == 2:  # chain: orange on blue on red (on the table)
        names = [name(b) for b in reversed(tower)]
        sep = rng.choice([" on ", " on top of ", " on top of ", " sits on "])
        text = sep.join(names)
        items = [f"{tower[i]} on {tower[i - 1]}" for i in range(n - 1, 0, -1)]
        if rng.random() < 0.5:
            text += rng.choice([" on the table", ", which is on the table", " (on the table)"])
            items.append(f"{tower[0]} on table")
        return text, items
    if style == 3:  # X at the bottom, then Y, then Z on top
        parts = [f"{name(tower[0])} {rng.choice(['at the bottom', 'is at the bottom', 'on the bottom'])}"]
        for b in tower[1:-1]:
            parts.append(f"{rng.choice(THEN_WORDS)} {name(b)}")
        parts.append(
            f"{rng.choice(THEN_WORDS + ['and'])} {name(tower[-1])}{rng.choice(['', ' on top', ' at the top'])}"
        )
        return ", ".join(parts), [f"{tower[0]} on table"] + [
            f"{tower[i]} on {tower[i - 1]}" for i in range(1, n)
        ]
    if style == 4:  # pronoun chain upward
        first = rng.choice(["{x} is on the table", "{x} sits on the table", "{x} is at the bottom"])
        parts = [first.replace("{x}", name(tower[0]))]
        items = [f"{tower[0]} on table"]
        for i in range(1, n):
            ref = rng.choice(["it", "that", "that one", "this one", "it"])
            parts.append(
                rng.choice(
                    [
                        f"on {ref} is {name(tower[i])}",
                        f"on top of {ref} sits {name(tower[i])}",
                        f"{name(tower[i])} is on {ref}",
                        f"{ref} has {name(tower[i])} on it",
                        f"on {ref} there's {name(tower[i])}",
                    ]
                )
            )
            items.append(f"{tower[i]} on {tower[i - 1]}")
        return _join(parts, rng) if rng.random() < 0.5 else ". ".join(parts), items
    if style == 5:  # pronoun chain downward
        parts = [
            rng.choice(["{x} is on top", "{x} is at the top", "at the top is {x}"]).replace(
                "{x}", name(tower[-1])
            )
        ]
        items = []
        for i in range(n - 1, 0, -1):
            ref = rng.choice(["it", "that", "that one"])
            parts.append(
                rng.choice(
                    [f"{ref} is on {name(tower[i - 1])}", f"under {ref} is {name(tower[i - 1])}",
                     f"{ref} sits on {name(tower[i - 1])}", f"below {ref} is {name(tower[i - 1])}"]
                )
            )  # fmt: skip
            items.append(f"{tower[i]} on {tower[i - 1]}")
        if rng.random() < 0.6:
            parts.append(
                rng.choice(["which is on the table", "and that is on the table", "that one is on the table"])
            )
            items.append(f"{tower[0]} on table")
        return ", ".join(parts), items
    # plain facts, in a random order, some in inverse form; the bottom's table fact sometimes left unsaid
    facts = [("on", tower[i], tower[i - 1]) for i in range(1, n)]
    if rng.random() < 0.6:
        facts.append(("table", tower[0], None))
    rng.shuffle(facts)
    parts, items = [], []
    for kind, x, y in facts:
        if kind == "table":
            parts.append(_fill(rng.choice(TABLE), name, x))
            items.append(f"{x} on table")
        else:
            bank = ON_INVERSE if rng.random() < 0.25 else ON
            parts.append(_fill(rng.choice(bank), name, x, y))
            items.append(f"{x} on {y}")
    return _join(parts, rng), items


def say_table(
    table: Table, rng: random.Random, name: Namer, named: frozenset = frozenset()
) -> tuple[list[str], list[str]]:
    """The start as sentences, and the items they say (in order). named: the blocks the goal names, which the
    start may leave to "they're all on the table" / "the rest are on the table" (the item `all on table`)."""
    towers = [t for t in table.towers]
    rng.shuffle(towers)
    singles = [t[0] for t in towers if len(t) == 1]
    stacks = [t for t in towers if len(t) > 1]
    sentences: list[tuple[str, list[str]]] = []
    group = rng.random() < 0.3 and len(stacks) >= 1
    if (
        group and rng.random() < 0.4
    ):  # "Each pile from the bottom up. Pile 1: yellow, magenta. Pile 2: orange."
        up = rng.random() < 0.65
        head = rng.choice(
            ["Listing each pile from the bottom up.", "Each stack from the bottom up:", "Stacks, bottom first.",
             "Stacks listed bottom first.", "Piles from the ground up:", "(bottom to top)"]
            if up else
            ["Each stack from the top down:", "Listing each pile top first.", "Stacks, top block first.",
             "(top to bottom)"]
        )  # fmt: skip
        piles = stacks + ([[b] for b in singles] if rng.random() < 0.6 else [])
        rng.shuffle(piles)
        sep = rng.choice([", ", ", ", " - ", "-", " / ", " then "])
        label = rng.choice(["Pile {k}:", "Stack {k}:", "Tower {k}:", "{k})", "{k}.", "-", "Stack {K}:"])
        sentences.append((head, []))
        for k, t in enumerate(piles, start=1):
            order = t if up else list(reversed(t))
            tag = label.replace("{k}", str(k)).replace("{K}", ["A", "B", "C", "D", "E", "F", "G", "H"][k - 1])
            items = [f"{t[0]} on table"] + [f"{t[i]} on {t[i - 1]}" for i in range(1, len(t))]
            sentences.append(
                (f"{tag} {sep.join(name(b, article=False) for b in order)}", items if up else items[::-1])
            )
        singles = [b for b in singles if [b] not in piles]
        stacks = []
    for k, t in enumerate(stacks, start=1):
        text, items = say_tower(t, name, rng)
        if group:
            label = rng.choice(
                [f"Stack {k}:", f"Stack {['one', 'two', 'three', 'four'][min(k, 4) - 1]}:", f"Tower {k}:",
                 f"Pile {k}:", "- ", f"{k}.", f"In the {['first', 'second', 'third', 'fourth'][min(k, 4) - 1]} stack,"]
            )  # fmt: skip
            text = f"{label} {text}"
        sentences.append((text, items))
    rest: list[tuple[str, list[str]]] = []  # said last: "the rest are on the table"
    if singles and set(singles) <= named and rng.random() < 0.25:  # every single is named by the goal
        if table.held and not sentences and rng.random() < 0.5:
            except_held = rng.choice(
                ["everything is on the table except {x}, which is in the hand",
                 "everything's flat on the table except that the robot is gripping {x}",
                 "all the blocks are on the table but {x}, which the robot holds"]
            )  # fmt: skip
            rest.append((_fill(except_held, name, table.held), ["all on table", f"holding {table.held}"]))
        elif sentences or table.held:
            rest.append((rng.choice(REST_ON_TABLE), ["all on table"]))
        else:
            text = rng.choice(ALL_ON_TABLE_START).replace("{n}", NUMBERS.get(len(singles), str(len(singles))))
            sentences.append(
                (text.replace("all two blocks", "both blocks").replace("all two", "both"), ["all on table"])
            )
    elif singles:
        style = rng.random()
        if style < 0.35 and len(singles) > 1:
            names = _join([name(b) for b in singles], rng)
            tpl = rng.choice(TABLE_MANY if not stacks else [t for t in TABLE_MANY if "{n}" not in t])
            tpl = tpl.replace("{n}", NUMBERS.get(len(singles), str(len(singles))))
            sentences.append((tpl.replace("{xs}", names), [f"{b} on table" for b in singles]))
        elif style < 0.45 and not stacks and len(singles) > 1:
            names = _join([name(b) for b in singles], rng)
            lead = rng.choice(["I have {xs}", "There are {xs}", "I've got {xs}", "{xs} are here"])
            if (
                rng.random() < 0.4
            ):  # "Nothing is on top of anything: red, blue and green are all on the table"
                tail = rng.choice(["are all on the table", "are all just lying on the table", "each sit on the table",
                                   "are all by themselves", "are all on their own"])  # fmt: skip
                text = f"{rng.choice(NONE_STACKED)}{rng.choice([' - ', ': ', ', ', ' — '])}{names} {tail}"
            else:
                text = f"{lead.replace('{xs}', names)}; {rng.choice(NONE_STACKED)}"
            sentences.append((text, [f"{b} on table" for b in singles]))
        else:
            for b in singles:
                sentences.append((_fill(rng.choice(TABLE), name, b), [f"{b} on table"]))
    if table.held and not any(f"holding {table.held}" in items for _, items in rest):
        sentences.append((_fill(rng.choice(HOLDING), name, table.held), [f"holding {table.held}"]))
    elif not table.held and rng.random() < 0.3:
        sentences.append((rng.choice(HAND_EMPTY), ["hand empty"]))
    if rng.random() < 0.12:  # a negated fact, which says no place: "red is not on blue", "green isn't held"
        blocks = table.blocks
        pairs = [(x, y) for x in blocks for y in blocks if x != y and f"{x} on {y}" not in table.items()]
        free = [b for b in blocks if b != table.held]
        if pairs and (rng.random() < 0.6 or not free):
            x, y = rng.choice(pairs)
            sentences.append((_fill(rng.choice(NOT_ON), name, x, y), []))
        elif free:
            sentences.append((_fill(rng.choice(NOT_HELD), name, rng.choice(free)), []))
    if rng.random() < 0.25:  # a clear fact or two, said outright
        tops = [t[-1] for t in towers]
        for b in rng.sample(tops, min(len(tops), rng.randint(1, 2))):
            sentences.append((_fill(rng.choice(CLEAR), name, b), [f"{b} clear"]))
    rng.shuffle(sentences) if rng.random() < 0.3 else None
    sentences += rest
    last = sentences[-1][1] if sentences else []
    return [s for s, _ in sentences], [i for _, items in sentences for i in items], last


def refer_back(sentence: str, items: list[str], named: frozenset, rng: random.Random) -> dict[str, str]:
    """How the goal can name the blocks of the start's last sentence: "it" for its one block, "the former" and
    "the latter" for its two, in the order the sentence says them (when their colour words can be found)."""
    words = ("on", "table", "all", "hand", "empty", "clear", "holding")
    blocks = list(dict.fromkeys(w for i in items for w in i.split() if w not in words))
    text = sentence.lower()
    if len(blocks) == 1 and blocks[0] in named:
        return {blocks[0]: rng.choice(["it", "that one", "that block", "this one", "it"])}
    where = {b: [m.start() for m in re.finditer(rf"\b{b}\b", text)] for b in blocks}
    if len(blocks) == 2 and all(len(w) == 1 for w in where.values()) and named & set(blocks):
        first, second = sorted(blocks, key=lambda b: where[b][0])
        return {first: "the former", second: "the latter"}
    return {}


# ---- saying a goal --------------------------------------------------------------------------------------------------
def say_goal(table: Table, goal: dict, rng: random.Random, name: Namer) -> tuple[str, list[str]]:
    kind = goal["kind"]
    if kind == "reverse":
        tower = next(t for t in table.towers if len(t) > 1 and goal.get("which") in (None, *t))
        if len(tower) == 2 and rng.random() < 0.35:  # "swap gold and silver"
            x, y = rng.sample(tower, 2)
            return _fill(rng.choice(SWAP), name, x, y), [f"reverse {x}"]
        if goal.get("which"):
            return _fill(rng.choice(REVERSE_ONE), name, goal["which"]), [f"reverse {goal['which']}"]
        if len(tower) <= 3 and rng.random() < 0.3:  # "the top one at the bottom and the bottom one on top"
            return rng.choice(REVERSE_SHORT), ["reverse"]
        return rng.choice(REVERSE), ["reverse"]
    if kind == "all on table":
        return rng.choice(ALL_TABLE), ["all on table"]
    if kind == "tower":
        t = goal["tower"]
        items = [f"{t[0]} on table"] + [f"{t[i]} on {t[i - 1]}" for i in range(1, len(t))]
        if rng.random() < 0.7:
            tpl = rng.choice(TOWER_GOAL).replace("all {n}", "both" if len(t) == 2 else "all {n}")
            tpl = tpl.replace("{n}", NUMBERS.get(len(t), str(len(t))))
            names = [name(b, article=rng.random() < 0.4) for b in t]
            text = (
                tpl.replace("{list}", _join(names, rng))
                .replace("{b}", names[0])
                .replace("{rest}", _join([f"{rng.choice(THEN_WORDS[:3])} {n}" for n in names[1:]], rng))
            )
            return text, items
        tpl = rng.choice(TOWER_GOAL_TOP)
        names = [name(b, article=rng.random() < 0.4) for b in reversed(t)]
        text = (
            tpl.replace("{list}", _join(names, rng))
            .replace("{chain}", rng.choice([" on ", " on top of "]).join(names))
            .replace("{t}", names[0])
            .replace("{rest}", _join([f"then {n}" for n in names[1:]], rng))
        )
        return text, list(reversed(items))
    parts, items = [], []
    verbal = rng.random() < 0.4
    facts = list(goal["facts"])
    w = facts[0].split() if len(facts) == 1 else []
    if w[1:2] == ["on"] and [w[2]] in table.towers and rng.random() < 0.2:
        # "put gold on blue, which is on the table": the start said again in the goal is not a goal
        text = rng.choice(GOAL_ON_WHICH_VERB if verbal else GOAL_ON_WHICH)
        return _fill(text, name, w[0], w[2]).replace("{it}", name(w[2])), [facts[0]]
    # (a draw the committed reader's training data was made with: it chose to sort the facts so that chains read
    # upward, but the sort key read the list being sorted, which Python empties meanwhile, so nothing moved; chains
    # are said with "on top of it" when the sampled order has them bottom-up)
    rng.random()
    below, pair = None, False  # the block the last fact put something on (or on the table); on a block?
    for f in facts:
        w = f.split()
        if len(w) == 3 and w[1] == "on" and w[2] == below and rng.random() < 0.6:
            bank = GOAL_ON_IT_VERB if verbal else GOAL_ON_IT
            parts.append(rng.choice(bank + GOAL_ON_THEM if pair else bank).replace("{x}", name(w[0])))
            items.append(f)
            below, pair = w[0], True
            continue
        below = w[0] if len(w) == 3 and w[1] == "on" else None
        pair = below is not None and w[2] != "table"
        if w[0] == "holding":
            parts.append(_fill(rng.choice(GOAL_HOLD), name, w[1]))
        elif w[1:] == ["clear"]:
            parts.append(_fill(rng.choice(GOAL_CLEAR), name, w[0]))
        elif w[2] == "table":
            parts.append(_fill(rng.choice(GOAL_TABLE_VERB if verbal else GOAL_TABLE), name, w[0]))
        else:
            parts.append(_fill(rng.choice(GOAL_ON_VERB if verbal else GOAL_ON), name, w[0], w[2]))
        items.append(f)
    return _join(parts, rng), items


def sample_table(rng: random.Random, colours: list[str]) -> Table:
    blocks = list(colours)
    rng.shuffle(blocks)
    held = blocks.pop() if rng.random() < 0.12 and len(blocks) > 2 else None
    towers: list[list[str]] = []
    for b in blocks:
        if towers and rng.random() < 0.55:
            rng.choice(towers).append(b)
        else:
            towers.append([b])
    return Table(towers, held)


def sample_goal(table: Table, rng: random.Random) -> dict:
    blocks = table.blocks
    tall = [t for t in table.towers if len(t) >= 2]
    r = rng.random()
    if r < 0.08 and tall:
        which = rng.choice(tall)
        named = len(tall) > 1 or rng.random() < 0.3
        return {"kind": "reverse", "which": rng.choice(which) if named else None}
    if r < 0.13 and (tall or table.held):
        return {"kind": "all on table"}
    if r < 0.35:
        t = rng.sample(blocks, rng.randint(2, min(len(blocks), 5)))
        return {"kind": "tower", "tower": t}
    # a few facts of another arrangement
    other = sample_table(rng, blocks)
    held = other.held
    facts = [i for i in other.items() if not i.startswith("holding")]
    start = set(table.items())
    new = [f for f in facts if f not in start and not f.endswith("on table")]
    pool = new or [f for f in facts if f not in start] or facts
    chosen = rng.sample(pool, min(len(pool), rng.choice([1, 1, 2, 2, 2, 3, 3, 4])))
    extra = [f for f in facts if f.endswith("on table") and f not in chosen and f not in start]
    if extra and rng.random() < 0.2:
        chosen.append(rng.choice(extra))
    tops = [t[-1] for t in other.towers if f"{t[-1]} clear" not in chosen]
    if tops and rng.random() < 0.08:
        chosen.append(f"{rng.choice(tops)} clear")
    if held and rng.random() < 0.3:
        chosen.append(f"holding {held}")
    rng.shuffle(chosen)
    return {"kind": "facts", "facts": chosen}


def sample_rules(table: Table, rng: random.Random, name: Namer) -> tuple[list[str], list[str]]:
    blocks = table.blocks
    texts, items = [], []
    for _ in range(rng.choice([1, 1, 1, 2])):
        key = rng.choice(list(RULES))
        x, y = rng.sample(blocks, 2) if len(blocks) >= 2 else (blocks[0], blocks[0])
        item = key.replace("{x}", x).replace("{y}", y)
        if item in items:
            continue
        texts.append(_fill(rng.choice(RULES[key]), name, x, y))
        items.append(item)
    return texts, items


# ---- noise ----------------------------------------------------------------------------------------------------------
def _sentence(s: str) -> str:
    s = s.strip()
    if not s:
        return s
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?:" else s + "."


def noisy(text: str, rng: random.Random) -> str:
    if rng.random() < 0.25:
        text = text.lower()
    if rng.random() < 0.12:
        text = re.sub(r"[.,;!]", "", text)
    if rng.random() < 0.25:  # typos in ordinary words
        words = text.split(" ")
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(len(words))
            if words[k].isalpha() and len(words[k]) > 3:
                words[k] = misspell(words[k], rng)
        text = " ".join(words)
    if rng.random() < 0.1:
        text = text.replace(" and ", rng.choice([" & ", " n ", " + "]))
    if rng.random() < 0.08:  # chat shorthand
        for a, b in (
            ("please", "pls"),
            ("want", "wanna"),
            ("the table", "the tbl"),
            ("you", "u"),
            ("have", "hav"),
        ):
            text = text.replace(a, b)
    return text


def generate(rng: random.Random, colours: list[str], sizes=(2, 8)) -> Request:
    """One request and its reading."""
    if rng.random() < 0.03:
        return Request(rng.choice(NOT_PLANNING), kind="chat")
    n = min(len(colours), rng.choice([2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 7, 8][: sizes[1] - 1]))
    pick = rng.sample(colours, max(n, sizes[0]))
    unknown = [c for c in OTHER_COLOURS if c not in colours]
    if rng.random() < 0.03 and unknown:  # a colour the world does not know
        pick[rng.randrange(len(pick))] = rng.choice(unknown)
    table = sample_table(rng, pick)
    name = Namer(rng, typo=rng.choice([0.0, 0.0, 0.05, 0.15]))
    goal = sample_goal(table, rng)
    named = frozenset(
        goal.get("tower")
        or [b for f in goal.get("facts", []) for b in f.split() if b in table.blocks]
        or [goal.get("which")]
    )
    start_sents, start, last_items = say_table(table, rng, name, named)
    tall = [t for t in table.towers if len(t) > 1]
    if len(tall) == 1:  # one stack: its blocks can be named by their place in it ("the top one")
        t = tall[0]
        name.positions = {
            t[-1]: rng.choice(["the top one", "the top block", "the one on top", "the topmost block"]),
            t[0]: rng.choice(["the bottom one", "the bottom block", "the one at the bottom"]),
        }
        if len(t) == 3:
            name.positions[t[1]] = rng.choice(["the middle one", "the middle block", "the one in the middle"])
    if table.held:  # "put the one in the hand on red"
        name.positions[table.held] = rng.choice(
            ["the one in the hand", "the held block", "the block in the gripper", "the one I'm holding",
             "the one the robot is holding"]
        )  # fmt: skip
    # the goal names a block of the start's last sentence by "it" or "the latter"; it is then said right after
    refer = goal["kind"] == "facts" and bool(start_sents) and rng.random() < 0.2
    if refer:
        once = refer_back(start_sents[-1], last_items, named, rng)
        name.once, name.said = {b: f"\x00{w}\x00" for b, w in once.items()}, []
        goal_text, goal_items = say_goal(table, goal, rng, name)
        used = [m.start() for m in re.finditer("\x00", goal_text)]
        # "it" must be the goal's first block ("put it on red", never "put red on blue and it on green")
        plain = [goal_text.find(n) for n in name.said]
        pronoun = any(w not in ("the former", "the latter") for w in once.values())
        refer = bool(used) and not (pronoun and plain and min(plain) < used[0])
        if refer:
            goal_text = goal_text.replace("\x00", "")
        name.once = {}
    if not refer:
        goal_text, goal_items = say_goal(table, goal, rng, name)
    others = [b for b in table.blocks if b not in named]
    if (
        goal["kind"] in ("facts", "tower") and others and rng.random() < 0.1
    ):  # "I don't care where green ends up"
        if len(others) > 1 and rng.random() < 0.5:
            xs = _join([name(b) for b in rng.sample(others, rng.randint(2, len(others)))], rng)
            goal_text += f". {_sentence(rng.choice(DONT_CARE_MANY).replace('{xs}', xs))}".rstrip(".")
        else:
            goal_text += f". {_sentence(_fill(rng.choice(DONT_CARE), name, rng.choice(others)))}".rstrip(".")
    kind = "plan"
    r = rng.random()
    if r < 0.04 and "all on table" not in start:  # a goal block never placed
        extra = rng.choice([c for c in colours + OTHER_COLOURS if c not in pick])
        other = rng.choice(pick)
        goal_text += f" and {_fill(rng.choice(GOAL_ON), name, extra, other)}"
        goal_items.append(f"{extra} on {other}")
        kind = "incomplete"
    elif r < 0.08 and not refer:  # a contradiction: one more fact about a placed block
        x = rng.choice(table.blocks)
        y = rng.choice([b for b in table.blocks if b != x] or [x])
        extra_item, extra_text = rng.choice(
            [
                (f"{x} on table", _fill(rng.choice(TABLE), name, x)),
                (f"{x} on {y}", _fill(rng.choice(ON), name, x, y)),
            ]
        )
        if extra_item not in start:
            start_sents.append(extra_text)
            start.append(extra_item)
            kind = "contradiction"
    rule_texts, rules = sample_rules(table, rng, name) if rng.random() < 0.22 else ([], [])
    if any(r.replace("keep", "never", 1) in rules for r in rules if r.startswith("keep")):
        kind = "contradiction"  # rules that forbid what another keeps: perception asks
    layout = rng.random()
    intro = rng.choice(START_INTROS)
    if layout < 0.15:  # bullets, one fact per line
        body = (intro + "\n" if intro else "") + "\n".join(
            f"{rng.choice(['-', '*', '•', ''])} {s}".strip() for s in start_sents
        )
    else:
        sep = rng.random()
        if sep < 0.4:
            body = " ".join(_sentence(s) for s in start_sents)
        elif sep < 0.75:
            body = (
                _sentence(_join(start_sents, rng)) if len(start_sents) < 5 else ". ".join(start_sents) + "."
            )
        else:
            body = "; ".join(start_sents) + "."
        body = f"{intro} {body[0].lower() + body[1:]}" if intro else body
    goal_intro = rng.choice(GOAL_INTROS)
    question = goal_intro.lower().startswith(("how", "what", "can", "is there", "could"))
    goal_sent = f"{goal_intro} {goal_text}" + ("?" if question else ".")
    if goal_intro.endswith(":") and goal_text.lower().startswith(
        ("put", "stack", "place", "move", "get", "set", "build")
    ):
        goal_sent = f"{goal_intro} {goal_text}."
    elif (
        goal["kind"] == "facts"
        and goal_text.split()[0] in ("put", "stack", "place", "move", "get", "set", "have", "pile", "bring")
        and rng.random() < 0.6
    ):
        goal_sent = _sentence(rng.choice(["please ", "can you ", "", "now ", "I need you to "]) + goal_text)
        if goal_sent.lower().startswith("can you"):
            goal_sent = goal_sent[:-1] + "?"
    elif goal["kind"] in ("reverse", "all on table") and rng.random() < 0.5:
        goal_sent = _sentence(rng.choice(["please ", "can you ", "I want to ", "", "now "]) + goal_text)
    rule_sents = [_sentence(f"{rng.choice(RULE_INTROS)} {t}".strip()) for t in rule_texts]
    if rng.random() < 0.05 and not refer:  # no goal at all, or no start at all
        if rng.random() < 0.5:
            goal_sent, goal_items, kind = (
                rng.choice(["What should I do?", "Any ideas?", "", "Help?"]),
                [],
                "incomplete",
            )
        else:
            body, start, kind = "", [], "incomplete"
    if kind == "incomplete" and not goal_items and rng.random() < 0.5:
        goal_sent = ""
    first = 0.0 if refer else rng.random()
    if first < 0.72:
        parts = [body, goal_sent]
    elif (
        goal_sent.endswith("?")
        and goal_items
        and 0 < len(start_sents) <= 3
        and not any(
            s.rstrip().endswith((":", ")")) for s in start_sents
        )  # no "Each stack from the bottom up:"
        and body
        and rng.random() < 0.35
    ):
        # "What steps would put green on yellow, if green is on the table with yellow on it?"
        joint = rng.choice([", if ", ", given that ", " when ", ", if right now "])
        said = _join(start_sents, rng)
        parts = [goal_sent.rstrip("?.!") + joint + said[0].lower() + said[1:] + "?"]
    elif first < 0.9 or not body:
        parts = [goal_sent, body]
    elif rng.random() < 0.7:  # "Reverse my tower: red on the table, blue on red."
        parts = [goal_sent.rstrip(".?!") + ": " + body[0].lower() + body[1:]]
    else:  # "Reverse my tower (green on the table, blue on green), please."
        said = body[0].lower() + body[1:].rstrip(".")
        parts = [goal_sent.rstrip(".?!") + f" ({said})" + rng.choice([".", ", please.", ", thanks.", "?"])]
    if rule_sents:
        parts.insert(2 if refer else rng.choice([1, 2]) if len(parts) > 1 else 1, " ".join(rule_sents))
    if rng.random() < 0.3:  # chatter before, after or in between
        for _ in range(rng.choice([1, 1, 2])):
            k = rng.randrange(len(parts) + 1)
            parts.insert(2 if refer and k == 1 else k, rng.choice(CHATTER))
    joiner = "\n" if rng.random() < 0.2 else " "
    text = joiner.join(p for p in parts if p)
    if not start and not goal_items and not rules:
        return Request(rng.choice(NOT_PLANNING), kind="chat")
    truth = expand_goal(table, goal, goal_items)
    if kind == "plan" and any(f"never {f}".replace("never holding", "never hold") in rules for f in truth):
        kind = "contradiction"  # a rule forbids what the goal asks for: perception asks
    # a fact kept all along is the rule's, not also the goal's
    kept = [f for f in truth if f"keep {f}" in rules]
    if kept and len(kept) < len(truth):
        truth = [f for f in truth if f not in kept]
    return Request(noisy(text, rng), start, goal_items, rules, kind, table, truth)


def expand_goal(table: Table, goal: dict, items: list[str]) -> list[str]:
    """The goal's facts: what was said, with `reverse` and `all on table` spelled out."""
    if goal["kind"] == "all on table":
        return [f"{b} on table" for b in table.blocks]
    if goal["kind"] == "reverse":
        tall = [t for t in table.towers if len(t) > 1 and (goal["which"] is None or goal["which"] in t)]
        t = list(reversed(tall[0]))
        return [f"{t[0]} on table"] + [f"{t[i]} on {t[i - 1]}" for i in range(1, len(t))]
    return list(items)
