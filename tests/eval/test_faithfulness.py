"""eval/faithfulness.py: the committed decoder writes generated plans back."""

from support import needs_trained

from decoder.api import Decoder


@needs_trained
def test_generated_faithfulness_decodes_optimal_plans_and_walks(vllm_backend, model_dir, planbench):
    from eval.faithfulness import generated_faithfulness
    from eval.suites import world_for

    world = world_for("planbench:blocksworld", planbench)
    rows = generated_faithfulness(Decoder(vllm_backend, model_dir), [world], problems=4, seed=777)
    assert [(r["world"], r["kind"], r["problems"]) for r in rows] == [
        (world.name, "optimal", 4),
        (world.name, "walk", 4),
    ]
    assert rows[0]["faithful"] == 4, rows  # generated optimal plans, as the planner returns them
