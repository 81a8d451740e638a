"""planner/constraints.py: what each kind of rule forbids."""

from planner.constraints import Constraint


def test_an_operator_rule_may_name_objects():
    anywhere = Constraint("forbid_operator", ("unload-truck",))
    there = Constraint("forbid_operator", ("unload-truck", "l1-0"))
    assert anywhere.forbids(("unload-truck", "p0", "t1", "l0-0"))
    assert not there.forbids(("unload-truck", "p0", "t1", "l0-0"))
    assert there.forbids(("unload-truck", "p0", "t1", "l1-0"))
    assert not there.forbids(("load-truck", "p0", "t1", "l1-0"))
    step = ("unload-truck", "p0", "t1", "l1-0")
    assert there.first_break([("drive-truck", "t1", "l1-1", "l1-0", "c1"), step], [set(), set(), set()]) == (
        "step 2 (unload-truck p0 t1 l1-0)"
    )
