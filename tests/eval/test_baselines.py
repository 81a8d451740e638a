"""eval/baselines.py: the ar-sft baseline's training stream and adapters, one per added world."""

import itertools

from eval import baselines, harness
from eval.suites import ADDED_DECODER_WORLDS, world_for
from planner.worlds.plans import parse_plan_text, validate


def test_an_added_world_trains_on_its_world_models_sizes_with_satisficing_plans():
    w = world_for(ADDED_DECODER_WORLDS[0])
    objects = baselines.world_model_objects(w)
    assert objects == (6, 25)  # the logistics recipe's dynamics and read-out stages, not its critic's
    stream = baselines.training_problems([w], objects, seed=3, solver=baselines.solve_satisficing)
    for world, p, plan in itertools.islice(stream, 6):
        assert world is w and 6 <= len(p.objects) <= 25 and plan
        assert validate(w.domain, p, parse_plan_text("\n".join(plan), w.domain, p)).valid


def test_each_world_finds_its_adapter(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "AR_SFT_DIR", tmp_path)
    (tmp_path / "logistics-strips" / "adapter").mkdir(parents=True)
    assert baselines.adapter_dir("logistics-strips") == tmp_path  # an empty folder is no adapter
    (tmp_path / "logistics-strips" / "adapter" / "adapter_config.json").write_text("{}")
    assert baselines.adapter_dir("logistics-strips") == tmp_path / "logistics-strips"
    assert baselines.adapter_dir("blocksworld-4ops") == tmp_path


def test_answers_have_room_for_the_problems_plans(planbench):
    bw = harness.load_cases("planbench:blocksworld", planbench, limit=1)[0]
    lg = harness.load_cases("planbench:logistics", planbench, limit=40)
    assert harness.answer_tokens(bw) == 600
    big = max(lg, key=lambda c: len(c.problem.objects))
    assert harness.answer_tokens(big) == 40 * len(big.problem.objects) > 600


def test_the_default_recipe_is_what_made_the_committed_adapters():
    """`ami-agent train ar-sft` with no option: the shared adapter's recipe, then logistics' own with the same
    minutes, batch, rank and learning rate, on its world model's sizes with satisficing plans."""
    import inspect
    import json

    shared = json.loads((baselines.AR_SFT_DIR / "ar-sft.json").read_text())
    added = json.loads((baselines.AR_SFT_DIR / "logistics-strips" / "ar-sft.json").read_text())
    defaults = {k: v.default for k, v in inspect.signature(baselines.train_ar_sft).parameters.items()}
    for rec in (shared, added):
        assert rec["config"]["minutes"] == defaults["minutes"] == 40.0
        assert rec["config"]["batch"] == defaults["batch"] and rec["config"]["lr"] == defaults["lr"]
        assert rec["lora"]["rank"] == defaults["rank"]
    assert shared["config"]["objects"] == list(defaults["objects"])
    assert added["config"]["worlds"] == ["logistics-strips"] and added["config"]["objects"] == [6, 25]
    assert added["config"]["plans"] == "satisficing"
    assert added["command"] == (
        "ami-agent train ar-sft --add-world ami_agent/worlds/logistics.pddl,ami_agent/worlds/logistics.yaml"
    )
