"""The decoder's prompt and answer: the chat prompt with soft-plan slots, the answer it is trained to write, and
reading the actions back from any answer.

A prompt is a list of segments: text, or a slot the plan projector fills with soft vectors. In `latent` mode the
prompt holds the problem text, a legend (each object's name next to a soft vector made from its identity embedding:
the world model knows objects only by identity) and the soft plan (per step: the operator with the predicted state,
then one vector per argument). It never holds the plan's words. `latent+text` adds each step in words after its
soft vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.worlds.nl import Verbalizer

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
) -> PromptSpec:
    """`preamble`: text put before the problem (e.g. the world's description)."""
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
    return PromptSpec(_merge(segments), answer_text(verbalizer, actions), names)


def answer_text(verbalizer: Verbalizer, actions: list[tuple[str, ...]]) -> str:
    n = len(actions)
    head = (
        "The goal already holds: nothing to do."
        if n == 0
        else f"My world model found a plan of {n} step{'s' if n != 1 else ''} that reaches the goal."
    )
    lines = [f"{t + 1}. {verbalizer.action(s)}" for t, s in enumerate(actions)]
    return "\n".join([head, "[PLAN]", *lines, "[PLAN END]"])


def read_answer(verbalizer: Verbalizer, text: str, objects: list[str]) -> list[tuple[str, ...]]:
    """The actions written in an answer (explanation and markers skipped)."""
    body = text
    if "[PLAN]" in body:
        body = body.split("[PLAN]", 1)[1]
    body = body.split("[PLAN END]", 1)[0]
    return verbalizer.read_plan(body, objects)


def _merge(segments: list) -> list:
    out: list = []
    for s in segments:
        if isinstance(s, str) and out and isinstance(out[-1], str):
            out[-1] += s
        else:
            out.append(s)
    return out
