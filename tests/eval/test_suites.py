"""eval/suites.py: PlanBench's suites read in place, their ground truth validated, its English read back."""

import pytest

from eval.suites import load_suite, resolve_planbench_dir
from planner.worlds.errors import WorldError
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.oracle import solve
from planner.worlds.pddl import load_domain, load_problem
from planner.worlds.plans import parse_plan_text, validate
from planner.worlds.strips import Task

SIZES = {
    "planbench:blocksworld": 500,
    "planbench:blocksworld_3": 100,
    "planbench:mystery_blocksworld": 500,
    "planbench:mystery_blocksworld_3": 100,
    "planbench:blocksworld_hard": 110,
    "planbench:logistics": 286,
    "planbench:unsolvable_blocksworld": 100,
}


@pytest.mark.parametrize("suite", SIZES)
def test_suite_sizes_and_ground_truth_validates(planbench, suite):
    instances = load_suite(suite, planbench)
    assert len(instances) == SIZES[suite]
    domain = load_domain(instances[0].domain_path)
    checked = 0
    for inst in instances:
        problem = load_problem(inst.problem_path, domain)
        if inst.ground_truth_plan is None:
            continue
        plan = parse_plan_text("\n".join(inst.ground_truth_plan), domain, problem)
        v = validate(domain, problem, plan)
        assert v.valid, f"{inst.name}: {v.reason}"
        checked += 1
    expected = {"planbench:logistics": 200, "planbench:unsolvable_blocksworld": 0}.get(suite, SIZES[suite])
    assert checked == expected


def test_oracle_length_equals_ground_truth_on_blocksworld(planbench):
    instances = load_suite("planbench:blocksworld", planbench)
    domain = load_domain(instances[0].domain_path)
    for inst in instances:
        problem = load_problem(inst.problem_path, domain)
        r = solve(Task(domain, problem))
        assert r.status == "solved", inst.name
        assert len(r.plan) == inst.optimal_length, inst.name
        assert validate(domain, problem, parse_plan_text("\n".join(r.plan), domain, problem)).valid


def test_unsolvable_suite_is_labelled(planbench):
    instances = load_suite("planbench:unsolvable_blocksworld", planbench, limit=5)
    assert all(i.solvable is False and i.query for i in instances)


@pytest.mark.parametrize(
    "suite",
    [
        "planbench:blocksworld",
        "planbench:mystery_blocksworld",
        "planbench:blocksworld_3",
        "planbench:mystery_blocksworld_3",
    ],
)
def test_english_matches_planbench_queries_and_reads_back(planbench, suite):
    instances = load_suite(suite, planbench)
    domain = load_domain(instances[0].domain_path)
    vb = Verbalizer(domain, NLConfig.load(instances[0].nl_config_path))
    for inst in instances:
        problem = load_problem(inst.problem_path, domain)
        assert vb.statement(problem.init, problem.goal) in inst.query, inst.name
        init, goal = vb.read_statement(inst.query, list(problem.objects))
        assert (init, goal) == (problem.init, problem.goal), inst.name
        plan = parse_plan_text("\n".join(inst.ground_truth_plan), domain, problem)
        assert vb.read_plan(vb.plan(plan), list(problem.objects), strict=True) == plan


def test_logistics_plans_read_back_where_two_actions_are_said_alike(planbench):
    """PlanBench's logistics English says `load-truck` and `load-airplane` alike ("load package_0 into airplane_0 at
    location_1_0"), and the same for unloading: the problem's static facts (`AIRPLANE a0`) tell them apart. Without
    them the first reading stands, so an airplane would be loaded as a truck."""
    instances = [i for i in load_suite("planbench:logistics", planbench, limit=40) if i.ground_truth_plan]
    domain = load_domain(instances[0].domain_path)
    vb = Verbalizer(domain, NLConfig.load(instances[0].nl_config_path))
    flown = 0
    for inst in instances:
        problem = load_problem(inst.problem_path, domain)
        plan = parse_plan_text("\n".join(inst.ground_truth_plan), domain, problem)
        text = vb.plan(plan)
        assert vb.read_plan(text, list(problem.objects), strict=True, facts=problem.init) == plan, inst.name
        if any(a[0] in ("load-airplane", "unload-airplane") for a in plan):
            flown += 1
            assert vb.read_plan(text, list(problem.objects)) != plan
    assert flown >= 10


def test_reading_free_lines_of_a_model_answer(planbench):
    inst = load_suite("planbench:blocksworld", planbench, limit=1)[0]
    domain = load_domain(inst.domain_path)
    vb = Verbalizer(domain, NLConfig.load(inst.nl_config_path))
    text = (
        "Here is my plan.\n1. Unstack the blue block from on top of the orange block.\n2. put down blue\n"
        "Step 3: pick up the orange block\n- Stack the orange block on top of the blue block.\nDone!"
    )
    assert vb.read_plan(text, list("abcd")) == [
        ("unstack", "b", "c"),
        ("put-down", "b"),
        ("pick-up", "c"),
        ("stack", "c", "b"),
    ]
    with pytest.raises(WorldError) as e:
        vb.read_plan(text, list("abcd"), strict=True, source="answer.txt")
    assert e.value.line == 1 and e.value.token == "Here is my plan."
    with pytest.raises(WorldError, match="no predicate matches"):
        vb.read_facts("the red block is floating", list("abcd"))


def test_logistics_object_names(planbench):
    inst = load_suite("planbench:logistics", planbench, limit=1)[0]
    domain = load_domain(inst.domain_path)
    vb = Verbalizer(domain, NLConfig.load(inst.nl_config_path))
    assert vb.object_phrase("l1-0") == "location_1_0" and vb.object_phrase("p0") == "package_0"
    assert vb.fact(("at", "p0", "l1-0")) == "package_0 is at location_1_0"
    assert vb.fact(("truck", "t0")) == ""
    assert vb.read_action(
        "drive truck_0 from location_0_0 to location_0_1 in city_0", ["t0", "l0-0", "l0-1", "c0"]
    ) == ("drive-truck", "t0", "l0-0", "l0-1", "c0")


def test_planbench_dir_option(tmp_path, planbench):
    with pytest.raises(WorldError, match="not a PlanBench folder"):
        resolve_planbench_dir(tmp_path)
    (tmp_path / "llm_planning_analysis").symlink_to(planbench)
    assert resolve_planbench_dir(tmp_path) == tmp_path / "llm_planning_analysis"
    with pytest.raises(WorldError, match="unknown suite"):
        load_suite("planbench:nope", planbench)


def test_numbered_names_are_found_in_text_with_the_types_they_imply(tmp_path):
    from ami_agent.services import WORLDS_DIR

    domain = load_domain(WORLDS_DIR / "logistics.pddl")
    vb = Verbalizer(domain, NLConfig.load(WORLDS_DIR / "logistics.yaml"))
    assert vb.numbered
    text = "truck_0 is at location_1_0; load p3 into a1 at l2-0 (package_12 is in city_1), not location_1_0x."
    assert vb.objects_in(text) == ["t0", "l1-0", "p3", "a1", "l2-0", "p12", "c1"]
    assert vb.type_facts(["t0", "p3", "l2-0", "zz"]) == {("truck", "t0"), ("obj", "p3"), ("location", "l2-0")}
    config = (WORLDS_DIR / "logistics.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.replace("t: truck", "t: at"))
    with pytest.raises(WorldError, match="not a predicate of one argument"):
        Verbalizer(domain, NLConfig.load(bad))
    bad.write_text(config.replace("  c: city\n", "  c: city\n  x: city\n"))
    with pytest.raises(WorldError, match="does not give a numbered"):
        Verbalizer(domain, NLConfig.load(bad))
