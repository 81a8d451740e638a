"""ami_agent/typed_reader.py: logistics requests in free phrasing, read by the types the names imply; what a
request leaves out becomes a question naming the object."""

import pytest

from ami_agent.perceive import perceive

# (request, initial facts that are not type facts, goal): phrasings written for these tests
CASES = [
    (
        "There are two cities, city_0 and city_1. city_0 has location_0_0, its airport, and location_0_1; city_1 "
        "has only location_1_0, which is an airport. truck_0 is parked at location_0_1 and truck_1 at "
        "location_1_0. airplane_0 waits at location_1_0. package_0 and package_1 are at location_0_1. Please "
        "deliver both packages to location_1_0.",
        "(at t0 l0-1) (at t1 l1-0) (at a0 l1-0) (at p0 l0-1) (at p1 l0-1) (in-city l0-0 c0) (in-city l0-1 c0) "
        "(in-city l1-0 c1) (airport l0-0) (airport l1-0)",
        "(at p0 l1-0) (at p1 l1-0)",
    ),
    (
        "Move package_2 from location_0_1 to location_1_1. location_0_0 and location_0_1 are in city_0, "
        "location_1_0 and location_1_1 in city_1. The airports are location_0_0 and location_1_0. truck_0 is at "
        "location_0_0, truck_1 at location_1_1, airplane_0 at location_0_0.",
        "(at p2 l0-1) (in-city l0-0 c0) (in-city l0-1 c0) (in-city l1-0 c1) (in-city l1-1 c1) (airport l0-0) "
        "(airport l1-0) (at t0 l0-0) (at t1 l1-1) (at a0 l0-0)",
        "(at p2 l1-1)",
    ),
    (
        "Goal: p0 at l1-0 and p1 at l0-1.\nl0-0 is in c0 and is an airport. l0-1 is in c0. l1-0 is in c1 and is "
        "an airport.\nt0 at l0-0. t1 at l1-0. a0 at l1-0.\np0 at l0-1. p1 at l1-0.",
        "(in-city l0-0 c0) (airport l0-0) (in-city l0-1 c0) (in-city l1-0 c1) (airport l1-0) (at t0 l0-0) "
        "(at t1 l1-0) (at a0 l1-0) (at p0 l0-1) (at p1 l1-0)",
        "(at p0 l1-0) (at p1 l0-1)",
    ),
    (
        "Hi! We have three cities (c0, c1, c2), each with a single location that doubles as its airport: l0-0, "
        "l1-0 and l2-0 respectively. Trucks t0, t1, t2 sit at l0-0, l1-0, l2-0. Planes a0 and a1 are at l2-0 "
        "and l0-0. p0 is at l1-0, p1 at l2-0. Deliver p0 to l0-0 and p1 to l1-0, thanks!",
        "(in-city l0-0 c0) (in-city l1-0 c1) (in-city l2-0 c2) (airport l0-0) (airport l1-0) (airport l2-0) "
        "(at t0 l0-0) (at t1 l1-0) (at t2 l2-0) (at a0 l2-0) (at a1 l0-0) (at p0 l1-0) (at p1 l2-0)",
        "(at p0 l0-0) (at p1 l1-0)",
    ),
    (
        "package_3 needs to go to location_1_1. Right now it is inside airplane_0, which is parked at "
        "location_0_0. location_0_0 is city_0's airport, location_1_0 is city_1's airport, and location_1_1 is "
        "in city_1 too. truck_0 is at location_0_0 and truck_1 at location_1_0.",
        "(in p3 a0) (at a0 l0-0) (airport l0-0) (in-city l0-0 c0) (airport l1-0) (in-city l1-0 c1) "
        "(in-city l1-1 c1) (at t0 l0-0) (at t1 l1-0)",
        "(at p3 l1-1)",
    ),
    (
        "- city_0: location_0_0 (airport), location_0_1\n- city_1: location_1_0 (airport)\n- truck_0 at "
        "location_0_0\n- truck_1 at location_1_0\n- airplane_0 at location_0_0\n- package_0 at location_0_1\n"
        "Can you get package_0 over to location_1_0?",
        "(in-city l0-0 c0) (in-city l0-1 c0) (in-city l1-0 c1) (airport l0-0) (airport l1-0) (at t0 l0-0) "
        "(at t1 l1-0) (at a0 l0-0) (at p0 l0-1)",
        "(at p0 l1-0)",
    ),
    (
        "At location_0_1 there are package_0 and package_1, and truck_0 is there too. location_0_0 is the "
        "airport of city_0, which also has location_0_1. city_1 has a single location, location_1_0, its "
        "airport, where truck_1 and airplane_0 are. I want package_0 at location_1_0 and package_1 at "
        "location_0_0.",
        "(at p0 l0-1) (at p1 l0-1) (at t0 l0-1) (airport l0-0) (in-city l0-0 c0) (in-city l0-1 c0) "
        "(in-city l1-0 c1) (airport l1-0) (at t1 l1-0) (at a0 l1-0)",
        "(at p0 l1-0) (at p1 l0-0)",
    ),
]


def _atoms(text: str) -> set[tuple[str, ...]]:
    return {tuple(x.split()) for x in text.strip("() ").split(") (")}


@pytest.mark.parametrize("text,init,goal", CASES, ids=[f"request{i}" for i in range(len(CASES))])
def test_free_logistics_requests_are_read_by_the_names_types(logistics_reader, text, init, goal):
    """Lists, parallel lists ("respectively"), places said backwards ("city_0 has ..."), asides in parentheses,
    "it" for the last sentence's subject, plurals of a kind ("both packages"), a move "from ... to ...", goals
    before or after the facts: the reading is exactly the request's facts, with the type facts the names imply."""
    got = perceive(text, logistics_reader, None)
    assert got.kind == "problem", got.question
    assert got.reader == "types"
    assert {a for a in got.init if len(a) > 2 or a[0] == "airport"} == _atoms(init)
    assert got.goal == _atoms(goal)
    assert ("truck", "t0") in got.init and (
        "obj",
        sorted(o for o in got.objects if o[0] == "p")[0],
    ) in got.init


def test_a_free_logistics_request_that_leaves_a_vehicle_out_gets_a_question_naming_it(logistics_reader):
    text = (
        "city_0 has location_0_0 (airport) and location_0_1; city_1 has location_1_0 (airport). truck_0 is at "
        "location_0_1. airplane_0 is at location_0_0. truck_1 is somewhere in city_1. package_0 is at "
        "location_0_1. Bring package_0 to location_1_0."
    )
    got = perceive(text, logistics_reader, None)
    assert got.kind == "clarify"
    assert '"truck_1 is at ..."' in got.question and got.question.endswith(".")
    twice = text.replace("truck_1 is somewhere in city_1", "truck_1 is at location_1_0 and at location_0_0")
    got = perceive(twice, logistics_reader, None)
    assert got.kind == "clarify" and "truck_1 is at location_0_0" in got.question
    assert "only one can hold" in got.question


def test_a_rule_in_a_free_logistics_request_is_a_rule_not_a_fact(logistics_reader):
    text = CASES[1][0] + " Never unload at location_1_0, and do not use truck_1."
    got = perceive(text, logistics_reader, None)
    assert got.kind == "problem" and {a for a in got.init if len(a) > 2 or a[0] == "airport"} == _atoms(
        CASES[1][1]
    )
    kinds = {(c.kind, c.target) for c in got.constraints}
    assert ("forbid_object", ("t1",)) in kinds and ("forbid_operator", ("unload-truck", "l1-0")) in kinds


def test_blocksworld_text_is_not_read_as_logistics(logistics_reader):
    got = perceive(
        "Put the red block on the blue block; the blue block is on the table.", logistics_reader, None
    )
    assert got.kind != "problem"


def test_a_logistics_followup_in_free_words_edits_the_threads_problem(logistics_reader):
    """In a thread, "now also bring ..." says goals and nothing of now: the goals join the thread's problem; a new
    goal for a package that had one replaces it."""
    first = perceive(CASES[0][0], logistics_reader, None)
    previous = {
        "objects": first.objects,
        "init": sorted(first.init),
        "goal": sorted(first.goal),
        "constraints": [],
    }
    got = perceive("Now bring package_0 to location_0_0 instead.", logistics_reader, previous)
    assert got.kind == "followup" and got.init == first.init
    assert got.goal == {("at", "p0", "l0-0"), ("at", "p1", "l1-0")}
