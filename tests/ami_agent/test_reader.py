"""ami_agent/describe.py, reader.py and perceive.understand: the generated requests, the reading's language, and
what perception makes of a reading (completion, expansion, questions)."""

import random

import pytest

from ami_agent.describe import generate
from ami_agent.perceive import understand
from ami_agent.reader import Names, complete_state, grounded, parse_reading, start_all_on_table
from planner.worlds.blocksworld import blocksworld_names


def _words(names: Names, facts) -> set[str]:
    """Facts back in the reading's words ("red on blue", "red on table", "red clear", "holding red")."""
    out = set()
    for a in facts:
        w = [names.word.get(o, o) for o in a[1:]]
        if a[0] == "on":
            out.add(f"{w[0]} on {w[1]}")
        elif a[0] == "ontable":
            out.add(f"{w[0]} on table")
        elif a[0] == "clear":
            out.add(f"{w[0]} clear")
        else:
            out.add(f"holding {w[0]}")
    return out


def test_generated_readings_rebuild_the_generated_problem(reader):
    """Reading every generated request right gives exactly the generated table and goal (macros expanded, unsaid
    facts completed); incomplete and contradictory requests become questions, never problems."""
    names = Names(reader.vb)
    colours = list(names.obj)
    rng = random.Random(11)
    kinds = set()
    for _ in range(400):
        r = generate(rng, colours)
        p = understand(parse_reading(r.reading, reader.vb, names), reader)
        kinds.add(r.kind)
        if r.kind == "incomplete":
            assert p.kind == "clarify", r.text
        if r.kind == "chat":
            assert p.kind == "chat"
        if r.kind != "plan" or any(b not in names.obj for b in r.table.blocks):
            continue
        assert p.kind == "problem", (r.text, r.reading, p.question)
        places = {a for a in p.init if a[0] in ("on", "ontable", "holding")}
        assert _words(names, places) == set(r.table.items()), (r.text, r.reading)
        assert _words(names, p.goal) == set(r.goal_truth), (r.text, r.reading)
        assert len(p.constraints) == len(
            r.rules
        )  # every rule read (their targets: test_the_reading_language)
    assert kinds == {"plan", "incomplete", "contradiction", "chat"}


def test_generated_requests_are_the_same_in_every_process():
    """Training data must not depend on Python's per-process string hashing."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, random; from ami_agent.describe import generate;"
        "rng = random.Random(0); cols = 'red blue orange yellow white magenta'.split();"
        "print(hashlib.md5(''.join(generate(rng, cols).text for _ in range(50)).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1, digests


def test_the_reading_language(reader):
    r = parse_reading(
        "start: red on bleu; blue on table; holding green; red clear\n"
        "goal: blue on red; reverse; all on table\n"
        "rules: never red on table; never use unstack; never touch green; never hold blue; keep blue on table; "
        "never red on blue; keep red on blue",
        reader.vb,
    )
    assert r.start == [("on", "a", "b"), ("ontable", "b"), ("holding", "i"), ("clear", "a")]  # 'bleu' -> blue
    assert r.goal == [("on", "b", "a")] and r.macros == [("reverse",), ("all on table",)]
    assert [(c.kind, c.target) for c in r.rules] == [
        ("forbid_fact", ("ontable", "a")),
        ("forbid_operator", ("unstack",)),
        ("forbid_object", ("i",)),
        ("forbid_fact", ("holding", "b")),
        ("require_fact", ("ontable", "b")),
        ("forbid_fact", ("on", "a", "b")),
        ("require_fact", ("on", "a", "b")),
    ]
    assert r.rules[0].describe() == "never put red on the table"
    assert parse_reading("start: peach on red\ngoal: red on table", reader.vb).unknown == ["peach"]
    assert parse_reading("start: red under blue\ngoal: red on table", reader.vb).unread == ["red under blue"]
    assert parse_reading("none", reader.vb).chat


def test_completion_places_what_is_said_nowhere(reader):
    names = blocksworld_names(reader.vb.domain)
    # blue is under red but its own place is unsaid; green is only said to be clear: both on the table
    init = complete_state({("on", "a", "b"), ("clear", "i")}, ["a", "b", "i"], names)
    assert init == {
        ("on", "a", "b"), ("ontable", "b"), ("ontable", "i"), ("clear", "a"), ("clear", "i"), ("handempty",),
    }  # fmt: skip
    held = complete_state({("holding", "a"), ("ontable", "b")}, ["a", "b"], names)
    assert ("handempty",) not in held and ("clear", "a") not in held and ("clear", "b") in held


@pytest.mark.parametrize(
    "reading, words",
    [
        ("start: red on table\ngoal: red on green", ["green", "where"]),  # a goal block never placed
        ("start: red on blue; red on table\ngoal: blue on red", ["red", "cannot"]),  # two places
        ("start: red on blue; orange on blue\ngoal: blue on red", ["only one block"]),
        ("start: red on blue; blue clear\ngoal: blue on red", ["clear"]),
        ("start: red on table; blue on table\ngoal: red on blue; blue on red", ["cannot hold"]),
        ("start: red on table; blue on red; green on table; orange on green\ngoal: reverse", ["which stack"]),
        ("start: red on table; blue on table\ngoal: reverse", ["no stack"]),
        ("start: \ngoal: red on blue", ["where is each block"]),
        ("start: red on table; blue on table\ngoal: ", ["you have: red and blue on the table", "in the end"]),
        ("start: red on table\ngoal: red on table\nrules: never touch gold", ["gold"]),
        ("start: red on blue; holding red\ngoal: blue on red", ["red", "in the hand"]),  # held and placed
        (
            "start: red on table; blue on table\ngoal: red on blue\nrules: keep blue on table; never blue on table",
            ["contradict"],
        ),
    ],
)
def test_what_is_missing_or_contradictory_is_asked_by_name(reader, reading, words):
    p = understand(parse_reading(reading, reader.vb), reader)
    assert p.kind == "clarify"
    assert all(w in p.question.lower() for w in words), p.question


def test_the_rest_on_the_table_places_every_block_the_request_names(reader):
    """`start: all on table` ("they're all on the table", "the rest are on the table") puts every block the goal
    or a rule names, and the start places nowhere, on the table; without it such a block is asked about."""
    p = understand(parse_reading("start: red on blue; all on table\ngoal: green on red", reader.vb), reader)
    assert p.kind == "problem"
    assert {a for a in p.init if a[0] in ("on", "ontable")} == {
        ("on", "a", "b"),
        ("ontable", "b"),
        ("ontable", "i"),
    }
    p = understand(
        parse_reading("start: all on table\ngoal: red on blue\nrules: never touch green", reader.vb), reader
    )
    assert p.kind == "problem" and sorted(p.objects) == ["a", "b", "i"]
    assert {a for a in p.init if a[0] == "ontable"} == {("ontable", "a"), ("ontable", "b"), ("ontable", "i")}
    p = understand(parse_reading("start: red on blue\ngoal: green on red", reader.vb), reader)
    assert p.kind == "clarify" and "green" in p.question


def test_a_rule_written_on_the_goal_line_is_a_rule(reader):
    r = parse_reading(
        "start: red on blue\ngoal: blue on red; never red on table; keep blue on table", reader.vb
    )
    assert r.goal == [("on", "b", "a")] and not r.unread
    assert [(c.kind, c.target) for c in r.rules] == [
        ("forbid_fact", ("ontable", "a")),
        ("require_fact", ("ontable", "b")),
    ]


def test_a_goal_a_rule_forbids_is_asked_about(reader):
    """The reader sometimes copies "don't put red on the table" into the goal as well: a question naming both,
    not a `no_plan` for a goal the rule blocks."""
    names = Names(reader.vb)
    reading = "start: red on blue; blue on table; yellow on table\ngoal: blue on yellow; red on table\n"
    p = understand(parse_reading(reading + "rules: never red on table", reader.vb, names), reader)
    assert p.kind == "clarify" and "red block" in p.question and "never put red on the table" in p.question
    p = understand(parse_reading(reading + "rules: never red on yellow", reader.vb, names), reader)
    assert p.kind == "problem"


def test_macros_expand_from_the_start(reader):
    p = understand(
        parse_reading("start: red on table; blue on red; orange on blue\ngoal: reverse", reader.vb), reader
    )
    assert p.goal == {("ontable", "c"), ("on", "b", "c"), ("on", "a", "b")}
    p = understand(
        parse_reading("start: red on table; blue on red; green on table\ngoal: all on table", reader.vb),
        reader,
    )
    assert p.goal == {("ontable", "a"), ("ontable", "b"), ("ontable", "i")}


def test_nothing_in_training_reads_the_written_requests():
    """The hand-written requests (eval/data) judge the reader; no module of the agent or the decoder imports their
    loader or names their files in code (docstrings may say where they are)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in list((root / "ami_agent").rglob("*.py")) + list((root / "decoder").rglob("*.py")):
        if "cli" in path.parts:  # the CLI runs the benchmarks
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                and n.body and isinstance(n.body[0], ast.Expr)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                assert not any(n.startswith("eval") for n in names), (path, names)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                assert "free_requests" not in node.value and "free_followups" not in node.value, path


def test_a_start_said_of_every_block_at_once(reader):
    """start_all_on_table(): a reading with no start where the request says every block is on the table gets
    `all on table` and the blocks that sentence names; no generated request whose reading has no start is
    changed (asking where the blocks are stays a question), nor a sentence that asks for it or leaves some out."""
    names = Names(reader.vb)
    rng = random.Random(9)
    checked = 0
    for _ in range(3000):
        r = generate(rng, list(names.obj))
        read = parse_reading(r.reading, reader.vb, names)
        if read.start or read.rest_on_table:
            continue
        start_all_on_table(read, r.text, names)
        assert not read.start and not read.rest_on_table, (r.text, r.reading)
        checked += 1
    assert checked > 100

    def start(text: str) -> tuple[bool, set[str]]:
        got = start_all_on_table(parse_reading("goal: blue on orange", reader.vb, names), text, names)
        return got.rest_on_table, _words(names, got.start)

    said = "Build a tower of blue on orange. Everything is on the table right now, and there's also a yellow block."
    assert start(said) == (True, {"yellow on table"})
    assert start("I'd like blue on orange. They're all on the table now.") == (True, set())
    assert start("Can blue end up on orange? All three are on the table.") == (True, set())
    assert start("Nothing is stacked. Blue on orange, please.") == (True, set())
    for text in (
        "I want them all on the table, then blue on orange.",
        "Everything except red is on the table. Blue on orange.",
        "Put everything on the table and then blue on orange.",
        "Blue on orange.",
    ):
        assert start(text) == (False, set()), text


def test_a_rule_the_request_never_states_is_dropped(reader):
    """grounded(): every rule of every generated request keeps its words; a rule read from "I don't care where
    green ends up", "orange can go wherever" or a plain goal is dropped, and "don't touch it" keeps its rule."""
    names = Names(reader.vb)
    rng = random.Random(5)
    checked = 0
    for _ in range(3000):
        r = generate(rng, list(names.obj))
        if not r.rules or r.kind == "chat":
            continue
        read = parse_reading(r.reading, reader.vb, names)
        n = len(read.rules)
        assert len(grounded(read, r.text, names).rules) == n, (r.text, r.reading)
        checked += 1
    assert checked > 300

    def rules(text: str, reading: str) -> list[str]:
        return [c.describe() for c in grounded(parse_reading(reading, reader.vb, names), text, names).rules]

    start = "start: red on table; green on red; orange on table\ngoal: orange on green\n"
    assert rules("Red has green on it, orange is alone. Put orange on green. I don't care where green ends up.",
                 start + "rules: never touch green") == []  # fmt: skip
    assert rules("Red has green on it, orange is alone. Orange on green please; red can go wherever.",
                 start + "rules: never touch red") == []  # fmt: skip
    assert rules("Red has green on it, orange is alone. Put orange on green. Don't touch it, though: red.",
                 start + "rules: never touch red") != []  # fmt: skip
    assert len(rules("Red has green on it, orange is alone. Put orange on green but never put green on the table.",
                     start + "rules: never green on table; never touch orange")) == 1  # fmt: skip
    assert rules("Red has green on it and someone grabbed orange, it's in the hand (don't ask). Orange on green.",
                 start + "rules: never touch orange") == []  # fmt: skip
    said = {  # rules in words the generator does not use: kept
        "Red must be kept off the table.": "never red on table",
        "Stacking red on blue is not allowed.": "never red on blue",
        "Please refrain from touching green.": "never touch green",
        "Green is off-limits.": "never touch green",
        "Red has to be on blue at every step.": "keep red on blue",
        "At no point should red be on the table.": "never red on table",
        "Under no circumstances pick up red.": "never hold red",
        "Make sure red is always on blue.": "keep red on blue",
        "Red is glued to blue.": "keep red on blue",
    }
    for sentence, rule in said.items():
        assert rules(
            f"Red has green on it, orange is alone. Put orange on green. {sentence}", start + f"rules: {rule}"
        )
    # an action forbidden needs the action named with the rule word
    assert rules("Red has green on it, orange is alone. Orange on green. Green should stay clear.",
                 start + "rules: never use stack") == []  # fmt: skip
    assert rules("Red has green on it, orange is alone. Orange on green. Do not stak anything, please.",
                 start + "rules: never use stack") == ["never use stack"]  # fmt: skip
    # a rule naming a block no world has, from a sentence that states no rule: no question about that block
    text = (
        "Red has green on it, orange is alone. Orange on green. The lights flicker, ignore it in the video."
    )
    r = grounded(parse_reading(start + "rules: never touch video", reader.vb, names), text, names)
    assert r.rules == [] and r.unknown == []
    r = grounded(parse_reading(start + "rules: never touch mauve", reader.vb, names), text + " Never touch mauve!",
                 names)  # fmt: skip
    assert r.unknown == ["mauve"]
