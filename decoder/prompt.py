"""The decoder's prompt and answer: the chat prompt with soft-plan slots, the answer it is trained to write, and
reading the actions back from any answer.

A prompt is a list of segments: text, or a slot the plan projector fills with soft vectors. In `latent` mode the
prompt holds the problem text, a legend (each object's name next to its code, decoder/projector.py: the world model
knows objects only by identity) and the soft plan (per step: the operator with the predicted state, then one vector
per argument). It never holds the plan's words. `latent+text` adds each step in words after its soft vectors.

The answer carries each step's soft vectors too, at the start of that step's line ("2." <step 2's vectors> " Unstack
the red block ..."), and the decoder writes the plan one line per round (`answer_rounds`): the line's number and its
step's vectors are put in, the language model writes the line. What to write next sits right before the cursor; the
rounds add line numbers and markers, never an action's words. The decoder also writes each argument's code token
right before the argument's name ("Unstack the<c1> red block from on top of the<c2> blue block"), copied from the
step's vectors, and the name after it is what followed the same code in the legend: two single lookups instead of
one that must chain them. The codes are cut from the answer returned (`strip_codes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.worlds.errors import WorldError
from planner.worlds.nl import Verbalizer, join_and, split_and

MODES = ("latent", "latent+text")
SYSTEM = "You put plans made by a world model into words."
INSTRUCTION = "Explain the plan in one sentence, then write its actions, one per line."


@dataclass(frozen=True)
class Slot:
    """A place for soft vectors: ("object", i) the legend entry of object i; ("step", t) step t's vectors."""

    kind: str
    index: int


@dataclass
class PromptSpec:
    segments: list = field(default_factory=list)  # str | Slot, in order
    answer: str = ""  # the target answer (training), or "" at inference
    names: list[str] = field(default_factory=list)  # the legend's object names, as written, in slot order
    # the answer as segments (str | Slot): its text with each step's slot at the start of the step's line
    answer_segments: list = field(default_factory=list)

    def text(self, *, soft: str = "<soft>") -> str:
        """The prompt with slots shown as a marker: for logs and for counting."""
        return "".join(s if isinstance(s, str) else soft for s in self.segments)


def build_prompt(
    verbalizer: Verbalizer,
    objects: list[str],
    init,
    goal,
    actions: list[tuple[str, ...]],
    mode: str = "latent",
    preamble: str = "",
    codes: dict[str, str] | None = None,
) -> PromptSpec:
    """`preamble`: text put before the problem (e.g. the world's description). `codes`: object -> its code
    character, written before each argument's name in the answer (None: the answer without codes, for prompts
    never trained on)."""
    if mode not in MODES:
        raise ValueError(f"unknown decoder mode {mode!r}: use one of {', '.join(MODES)}")
    user: list = [(preamble.strip() + "\n\n" if preamble.strip() else "") + verbalizer.statement(init, goal)]
    user.append("\nObjects:")
    for i, o in enumerate(objects):
        user += [
            " ",
            Slot("object", i),
            " " + verbalizer.object_phrase(o) + ("," if i < len(objects) - 1 else "."),
        ]
    user.append("\nPlan:")
    for t, step in enumerate(actions):
        user += [f"\n{t + 1}. ", Slot("step", t)]
        if mode == "latent+text":
            user.append(" " + verbalizer.action(step))
    user.append("\n" + INSTRUCTION)
    segments = [f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n", *user, "<|im_end|>\n"]
    segments.append("<|im_start|>assistant\n")
    names = [verbalizer.object_phrase(o) for o in objects]
    answer = answer_text(verbalizer, actions)
    return PromptSpec(_merge(segments), answer, names, answer_segments(verbalizer, actions, codes))


STATE_SYSTEM = "You put states predicted by a world model into words."
STATE_INSTRUCTION = "Describe this state."


def build_state_prompt(
    verbalizer: Verbalizer, objects: list[str], facts=(), codes: dict[str, str] | None = None
) -> PromptSpec:
    """A predicted state to describe: no text of the problem or plan, only the legend (each object's code and name,
    then its state vectors: Slot("state", i)) and the global vector (Slot("world", 0)). The answer (training) is
    the state's facts in the world's phrasing, `state_answer`; `codes` as in `build_prompt`."""
    user: list = ["Objects:"]
    for i, o in enumerate(objects):
        user += [" ", Slot("object", i), " " + verbalizer.object_phrase(o) + " ", Slot("state", i)]
        user.append("," if i < len(objects) - 1 else ".")
    user += ["\nWorld: ", Slot("world", 0), "\n" + STATE_INSTRUCTION]
    segments = [f"<|im_start|>system\n{STATE_SYSTEM}<|im_end|>\n<|im_start|>user\n", *user, "<|im_end|>\n"]
    segments.append("<|im_start|>assistant\n")
    names = [verbalizer.object_phrase(o) for o in objects]
    answer = state_answer(verbalizer, objects, facts)
    coded = state_answer(verbalizer, objects, facts, codes) if codes is not None else answer
    return PromptSpec(_merge(segments), answer, names, [coded])


def state_order(objects: list[str], facts) -> list[tuple[str, ...]]:
    """The order a state's facts are said in: object by object as the legend lists them (each fact under its first
    argument, by predicate, then by its other arguments' places in the legend), facts without arguments last."""
    place = {o: i for i, o in enumerate(objects)}
    return sorted(
        (tuple(a) for a in facts),
        key=lambda a: (place[a[1]] if len(a) > 1 else len(objects), a[0], [place[x] for x in a[2:]]),
    )


def state_answer(
    verbalizer: Verbalizer, objects: list[str], facts, codes: dict[str, str] | None = None
) -> str:
    """The state in the world's phrasing, one sentence (`state_order`): "the red block is clear, the red block is
    on top of the blue block, ... and the hand is empty." With `codes`, each object's code before its name, and
    before the first of its facts."""
    parts, group = [], None
    for a in state_order(objects, facts):
        said = verbalizer.fact(a) if codes is None else coded_fact(verbalizer, a, codes)
        if not said:
            continue
        if codes is not None and len(a) > 1 and a[1] != group:
            # an object's facts open with its code, whatever the phrase starts with ("the hand is currently
            # holding ..."): which object comes next is decided before how its facts are said
            group = a[1]
            said = said if said.startswith(codes[group]) else codes[group] + said
        parts.append(said)
    return (join_and(parts) or "nothing holds") + "."


def read_state(verbalizer: Verbalizer, text: str, objects: list[str]) -> tuple[frozenset, list[str]]:
    """The facts a description says, and the clauses that say none."""
    facts, unread = set(), []
    for clause in split_and(text):
        try:
            facts.add(verbalizer.read_fact(clause, objects))
        except WorldError:
            unread.append(clause.strip())
    return frozenset(facts), unread


def answer_head(steps: int) -> str:
    """The answer's first line, the explanation (round 0)."""
    if steps == 0:
        return "The goal already holds: nothing to do."
    return f"My world model found a plan of {steps} step{'s' if steps != 1 else ''} that reaches the goal."


def answer_text(verbalizer: Verbalizer, actions: list[tuple[str, ...]]) -> str:
    head = answer_head(len(actions))
    lines = [f"{t + 1}. {verbalizer.action(s)}" for t, s in enumerate(actions)]
    return "\n".join([head, "[PLAN]", *lines, "[PLAN END]"])


def answer_segments(
    verbalizer: Verbalizer, actions: list[tuple[str, ...]], codes: dict[str, str] | None = None
) -> list:
    """The interleaved answer: `answer_text`'s text with Slot("step", t) after each line's number. Pieces the
    language model writes (the explanation, each line's action) and pieces the rounds put in (markers, numbers)
    are separate segments, tokenized alone in training as in decoding. codes: each action's arguments written
    with their codes (`coded_action`)."""
    head = answer_head(len(actions))
    say = verbalizer.action if codes is None else (lambda step: coded_action(verbalizer, step, codes))
    written = [head] + [" " + say(step) for step in actions]
    out: list = []
    for (put, slot), piece in zip(answer_rounds(len(actions)), written):
        out += [put] if put else []
        out += [slot] if slot is not None else []
        out.append(piece)
    return out + [answer_end(len(actions))]


def answer_rounds(steps: int) -> list[tuple[str, Slot | None]]:
    """How an interleaved answer is decoded: per round, (the text put in before it, the slot put in after that
    text); the language model then writes until a line break. Round 0 writes the explanation; round t + 1 writes
    step t's action. After the last round the answer ends with `answer_end(steps)`."""
    rounds: list[tuple[str, Slot | None]] = [("", None)]
    for t in range(steps):
        rounds.append((("\n[PLAN]\n" if t == 0 else "\n") + f"{t + 1}.", Slot("step", t)))
    return rounds


def answer_end(steps: int) -> str:
    return "\n[PLAN END]" if steps else "\n[PLAN]\n[PLAN END]"


def coded_action(verbalizer: Verbalizer, step: tuple[str, ...], codes: dict[str, str]) -> str:
    """The action's phrase with each argument's code character right before its name (before the space that
    precedes the name, when there is one): `strip_codes` of it is `verbalizer.action(step)`."""
    return _coded(verbalizer, verbalizer.config.actions[step[0]], step[1:], codes)


def _coded(verbalizer: Verbalizer, template: str, args, codes: dict[str, str]) -> str:
    marks = [f"\x00{k}\x00" for k in range(len(args))]
    text = template.format(*(m + verbalizer.object_phrase(a) for m, a in zip(marks, args)))
    for m, a in zip(marks, args):
        text = text.replace(" " + m, codes[a] + " ", 1) if " " + m in text else text.replace(m, codes[a], 1)
    return text


def coded_fact(verbalizer: Verbalizer, atom: tuple[str, ...], codes: dict[str, str]) -> str:
    """A fact's phrase with each argument's code right before its name, as `coded_action` writes actions."""
    template = verbalizer.config.predicates.get(atom[0])
    if not template:
        return ""
    return _coded(verbalizer, template, atom[1:], codes)


def strip_codes(text: str, chars) -> str:
    """The text without the code characters `chars` (an answer as the user reads it)."""
    return "".join(c for c in text if c not in chars) if chars else text


def split_codes(text: str, chars) -> list[str]:
    """The text cut before and after each code character (each code is tokenized alone, as in the legend)."""
    if not chars:
        return [text]
    out, cur = [], ""
    for c in text:
        if c in chars:
            out += [cur, c] if cur else [c]
            cur = ""
        else:
            cur += c
    return out + ([cur] if cur else [])


def read_answer(verbalizer: Verbalizer, text: str, objects: list[str], facts=None) -> list[tuple[str, ...]]:
    """The actions written in an answer (explanation and markers skipped); `facts`: the problem's, which tell
    apart actions said alike (`Verbalizer.read_action`)."""
    body = text
    if "[PLAN]" in body:
        body = body.split("[PLAN]", 1)[1]
    body = body.split("[PLAN END]", 1)[0]
    return verbalizer.read_plan(body, objects, facts=facts)


def _merge(segments: list) -> list:
    out: list = []
    for s in segments:
        if isinstance(s, str) and out and isinstance(out[-1], str):
            out[-1] += s
        else:
            out.append(s)
    return out


def chat_prompt_ids(tokenizer, user: str, system: str | None = None) -> list[int]:
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    out = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])
