"""ami_agent/questions.py: which state a follow-up asks about, what it asks, and the answer picked from the facts
said of that state. (Phrasings here are the project's own; the held-out ones are eval/data/state_questions.jsonl.)"""

import pytest

from ami_agent.questions import StateQuestion, answer, state_question, step_of, when_phrase

COLOURS = {"a": "red", "b": "blue", "c": "orange", "d": "yellow"}


@pytest.mark.parametrize(
    "text, when, kind, block",
    [
        ("What will it look like at the end?", "end", "describe", None),
        ("and after step 3?", 3, "describe", None),
        ("describe the state after the second move", 2, "describe", None),
        ("what's on the red block after step 2?", 2, "covered", "a"),
        ("is blue clear when you're done?", "end", "covered", "b"),
        ("anything sitting on top of orange at the start", "start", "covered", "c"),
        ("where is the yelow block after the third step", 3, "place", "d"),
        ("what is red sitting on before you move anything?", "start", "place", "a"),
        ("what's under the blue one after step one", 1, "place", "b"),
        ("is red on top of blue at the end?", "end", "place", "a"),
        ("what is the hand holding after step 3?", 3, "holding", None),
        ("which blocks are on the table initially?", "start", "table", None),
        ("right before step 2, where's orange?", 1, "place", "c"),
        ("what does the gripper have after the last step", "end", "holding", None),
        # asked politely, with typos, with the step said around other words
        ("could you tell me what is on the blue block at the start?", "start", "covered", "b"),
        ("wats undr the red block aftr the frist step", 1, "place", "a"),
        ("is the yelow block clear after step 2", 2, "covered", "d"),
        ("whats ontop of yellow when ur done", "end", "covered", "d"),
        ("just before you do step 3, where is orange?", 2, "place", "c"),
        ("will red have nothing on top of it after step 2?", 2, "covered", "a"),
        ("I want to know where blue is at the very begining", "start", "place", "b"),
        ("is the hand empty at the end?", "end", "holding", None),
        ("In the final layout, which blocks stand on the table?", "end", "table", None),
    ],
)
def test_state_questions_are_read(text, when, kind, block):
    assert state_question(text, COLOURS) == StateQuestion(when, kind, block)


@pytest.mark.parametrize(
    "text",
    [
        "Can you put red on blue?",
        "how do I get red onto blue?",
        "Now also put the yellow block on the orange block.",
        "what if the hand holds red?",
        "undo the last one",
        "is that the shortest plan?",
        "What's the capital of France?",
        "thanks!",
        "As initial conditions I have that, the red block is clear. My goal is to have that ...",
        "I want blue on red now",
        "could you put red on the table at the end?",
        "Could you tell me how to get red onto blue?",
    ],
)
def test_other_turns_are_no_state_questions(text):
    assert state_question(text, COLOURS) is None


STATE = {
    ("on", "a", "b"),
    ("ontable", "b"),
    ("clear", "a"),
    ("holding", "c"),
    ("ontable", "d"),
    ("clear", "d"),
}


def _name(o):
    return f"the {COLOURS[o]} block"


@pytest.mark.parametrize(
    "kind, block, said",
    [
        ("covered", "b", "The red block is on top of the blue block, so the blue block is not clear."),
        ("covered", "a", "Nothing is on the red block: it is clear."),
        ("covered", "c", "Nothing is on the orange block: the hand holds it."),
        ("place", "a", "The red block is on top of the blue block."),
        ("place", "d", "The yellow block is on the table."),
        ("place", "c", "The hand holds the orange block."),
        ("holding", None, "The hand holds the orange block."),
        ("table", None, "On the table: the blue block and the yellow block."),
    ],
)
def test_the_answer_says_what_the_facts_say(kind, block, said):
    assert answer(StateQuestion("end", kind, block), STATE, _name) == said


def test_an_empty_hand_and_steps_out_of_the_plan():
    assert (
        answer(StateQuestion(2, "holding", None), {("handempty",), ("ontable", "a")}, _name)
        == "The hand is empty."
    )
    assert (
        answer(StateQuestion(2, "covered", "a"), {("craves", "a", "b")}, _name) == ""
    )  # not blocks: described
    assert [step_of(w, 4) for w in ("start", "end", 2, 4, 5, "before last")] == [0, 4, 2, 4, None, 3]
    assert [when_phrase(t, 4) for t in (0, 2, 4)] == [
        "Before the first step",
        "After step 2",
        "At the end (after step 4)",
    ]
