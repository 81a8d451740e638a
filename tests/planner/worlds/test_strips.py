"""planner/worlds/strips.py: grounding and applying actions."""

from planner.worlds.strips import Task


def test_grounding_and_apply(bw_domain, tower):
    task = Task(bw_domain, tower)
    app = {task.actions[i].label for i in task.applicable(task.init)}
    assert app == {"(unstack c b)"}
    s = task.apply(task.init, task.find_action("unstack", ("c", "b")))
    assert task.state_facts(s) == {("holding", "c"), ("clear", "b"), ("ontable", "a"), ("on", "b", "a")}
    assert not task.is_goal(s)
