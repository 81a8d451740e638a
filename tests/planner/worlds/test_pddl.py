"""planner/worlds/pddl.py: reading PDDL, and errors that name the file, line and token."""

import pytest
from conftest import BLOCKSWORLD, KEYS_DOMAIN, KEYS_PROBLEM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.worlds.errors import WorldError
from planner.worlds.pddl import load_domain, parse_domain, parse_problem
from planner.worlds.plans import parse_plan_text


def test_domain_is_read(bw_domain):
    assert bw_domain.name == "blocksworld-4ops"
    assert bw_domain.predicates == {"clear": 1, "ontable": 1, "handempty": 0, "holding": 1, "on": 2}
    stack = bw_domain.actions["stack"]
    assert stack.parameters == ["?ob", "?underob"]
    assert ("holding", "?ob") in stack.precondition
    assert ("on", "?ob", "?underob") in stack.add
    assert ("holding", "?ob") in stack.delete


PROBLEM = """(define (problem p) (:domain blocksworld-4ops)
(:objects a b c)
(:init (handempty) (ontable a) (on b a) (clear b) (ontable c) (clear c))
(:goal (and (on a b))))
"""


def test_problem_is_read(bw_domain):
    p = parse_problem(PROBLEM, bw_domain, "p.pddl")
    assert list(p.objects) == ["a", "b", "c"]
    assert ("on", "b", "a") in p.init
    assert p.goal == frozenset({("on", "a", "b")})


def test_case_and_types_are_tolerated():
    d = parse_domain(KEYS_DOMAIN.upper().replace("?", "?"), "keys.pddl")
    assert d.types == {"room": "object", "key": "object"}
    p = parse_problem(KEYS_PROBLEM, d)
    assert p.objects["k1"] == "key" and p.objects["r1"] == "room"


@pytest.mark.parametrize(
    "text, line, token, words",
    [
        (PROBLEM.replace("(on b a)", "(on b a"), 1, "(", "unclosed"),
        (PROBLEM.replace("(on b a)", "(onn b a)"), 3, "onn", "unknown predicate 'onn'"),
        (PROBLEM.replace("(on b a)", "(on b)"), 3, "on", "takes 2 argument(s), got 1"),
        (PROBLEM.replace("(ontable c)", "(ontable z)"), 3, "z", "unknown object 'z'"),
        (PROBLEM + "(extra)", 5, "(", "more than one top-level form"),
        (PROBLEM + ")", 5, ")", "unbalanced ')'"),
    ],
)
def test_problem_errors_name_file_line_and_token(bw_domain, text, line, token, words):
    with pytest.raises(WorldError) as e:
        parse_problem(text, bw_domain, "bad.pddl")
    assert e.value.source == "bad.pddl"
    assert e.value.line == line
    assert e.value.token == token
    assert words in str(e.value)
    assert str(e.value).startswith(f"bad.pddl:{line}:")


def test_domain_errors():
    with pytest.raises(WorldError, match="'or' is not supported"):
        parse_domain(
            BLOCKSWORLD.replace(
                "(and (clear ?ob) (ontable ?ob) (handempty))", "(or (clear ?ob) (ontable ?ob))"
            ),
            "d.pddl",
        )
    with pytest.raises(WorldError, match="unknown parameter '\\?zz'"):
        parse_domain(
            BLOCKSWORLD.replace(
                "(holding ?ob)\n    :effect (and (clear ?ob)", "(holding ?zz)\n    :effect (and (clear ?ob)"
            ),
            "d.pddl",
        )
    with pytest.raises(WorldError, match="expected a domain definition"):
        parse_domain(PROBLEM, "swapped.pddl")


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(WorldError, match="no such domain file"):
        load_domain(tmp_path / "nope.pddl")
    f = tmp_path / "bin.pddl"
    f.write_bytes(b"(define \xff\xfe")
    with pytest.raises(WorldError, match="not UTF-8"):
        load_domain(f)


def test_plan_lines(bw_domain):
    p = parse_problem(PROBLEM, bw_domain)
    steps = parse_plan_text("; a comment\n(unstack b a)\n\n(PUT-DOWN b) ; trailing\n", bw_domain, p)
    assert steps == [("unstack", "b", "a"), ("put-down", "b")]
    with pytest.raises(WorldError) as e:
        parse_plan_text("(unstack b a)\nunstack b from a\n", bw_domain, p, "plan.txt")
    assert (e.value.source, e.value.line, e.value.token) == ("plan.txt", 2, "unstack b from a")
    with pytest.raises(WorldError, match="unknown action 'fly'"):
        parse_plan_text("(fly b a)", bw_domain, p)
    with pytest.raises(WorldError, match="takes 2 argument"):
        parse_plan_text("(stack b)", bw_domain, p)
    with pytest.raises(WorldError, match="unknown object 'q'"):
        parse_plan_text("(pick-up q)", bw_domain, p)


_pddl_chars = st.sampled_from(
    list("()?-; \n\tabcdefgho:")
    + ["define", "domain", "problem", ":init", ":goal", ":objects", "and", "not", "on", ":action"]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pddl_chars, max_size=60).map("".join))
def test_fuzz_reader_only_raises_world_errors(text):
    for parse in (lambda t: parse_domain(t, "fuzz.pddl"), lambda t: parse_problem(t, None, "fuzz.pddl")):
        try:
            parse(text)
        except WorldError as e:
            assert e.source == "fuzz.pddl"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(PROBLEM) - 1), st.integers(1, 5), st.text(max_size=4))
def test_fuzz_mutated_problem(bw_domain, start, length, insert):
    text = PROBLEM[:start] + insert + PROBLEM[start + length :]
    try:
        parse_problem(text, bw_domain, "m.pddl")
    except WorldError as e:
        assert e.source == "m.pddl" and str(e)
