"""planner/train.py: recipes and their stages, and that the defaults are the recipe of the committed models."""

import math
from dataclasses import replace

import pytest
import torch
from conftest import ROOT

from planner.search import SearchConfig


def test_first_state_online_encodes_one_state_per_trajectory(bw_domain):
    """`online_states="first"`: the online encoder encodes only each trajectory's first state (B states, not
    B*(K+1)); the later states' latents are the target encoder's, so the teacher-forced and rolled-out terms
    still train the encoder through the first state, and the same losses are there."""
    import copy

    from planner.data import TrajectorySampler, collate
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.train import RecipeError, TrainConfig, _slots, batch_losses, check_stages

    vocab = Vocabulary.from_domain(bw_domain)
    sampler = TrajectorySampler(bw_domain, vocab, rng=1)
    batch = collate([sampler.sample(4, 3, 0.0) for _ in range(5)], sampler.positional(4))
    mcfg = WorldModelConfig(dim=32, heads=2, encoder_layers=1, predictor_layers=1, critic_layers=1)
    counts = {}
    for online in ("all", "first"):
        torch.manual_seed(0)
        model = WorldModel(vocab, mcfg)
        target = copy.deepcopy(model.encoder).requires_grad_(False)
        seen = []
        hook = model.encoder.register_forward_hook(lambda m, args, out, seen=seen: seen.append(out.shape[0]))
        cfg = TrainConfig(online_states=online)
        loss, stats = batch_losses(model, target, batch, _slots(5, 4, 64, torch.Generator()), cfg)
        hook.remove()
        loss.backward()
        counts[online] = sum(seen)
        assert math.isfinite(loss.item()) and stats["jepa_1step"] > 0 and stats["jepa_rollout"] > 0
        assert model.encoder.body.layers[0].linear1.weight.grad.abs().sum() > 0
    assert counts == {"all": 5 * 4, "first": 5}
    with pytest.raises(RecipeError, match="online_states"):
        check_stages([TrainConfig(online_states="some")])


def test_budget_schedule_anneals_a_run_its_minutes_stop():
    """With lr_schedule "budget" the cosine follows whichever of steps and minutes runs out first: a 10-minute run
    of 100,000 steps ends near a rate of 0, where the "steps" schedule would still be at its peak."""
    from planner.train import RecipeError, TrainConfig, check_stages, learning_rate

    steps = TrainConfig(steps=100_000, minutes=10, warmup=100, lr_schedule="steps")
    budget = TrainConfig(steps=100_000, minutes=10, warmup=100, lr_schedule="budget")
    assert (
        learning_rate(steps, 50, 0.0) == learning_rate(budget, 50, 0.0) == pytest.approx(0.5 * steps.lr)
    )  # warmup
    assert learning_rate(steps, 2000, 9.9) > 0.99 * steps.lr
    assert learning_rate(budget, 2000, 5.0) == pytest.approx(0.5 * budget.lr)
    assert learning_rate(budget, 2000, 9.9) < 0.001 * budget.lr
    assert learning_rate(budget, 100_000, 1.0) == pytest.approx(0.0, abs=1e-12)  # the steps ran out first
    with pytest.raises(RecipeError, match="lr_schedule"):
        check_stages([TrainConfig(lr_schedule="linear")])


def test_training_only_the_readouts_leaves_the_latents_as_they_were(bw_domain, tmp_path):
    """A stage with `train_only` leaves the parts it does not name alone: a second stage training the read-outs
    keeps identities, encoder and predictor (so the latents, and a decoder trained on them) bit for bit as the
    first stage saved them, while every part named moves."""
    from planner.checkpoint import load_checkpoint
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModelConfig
    from planner.train import PARTS, Recipe, RecipeError, TrainConfig, train_stage, train_world_model

    # an attention critic learns from optimal-plan labels, so a read-out stage moves it too
    mcfg = WorldModelConfig(dim=32, heads=2, encoder_layers=1, predictor_layers=1, critic_kind="attention")
    small = dict(
        objects=(3, 3), steps=3, batch_size=4, rollout=2, optimal_fraction=1.0, lr=1e-2, critic_weight=1
    )
    first = tmp_path / "a.pt"
    rec = train_world_model(bw_domain, Recipe(mcfg, [TrainConfig(**small)]), first, log=lambda m: None)
    assert rec["stages"][0]["steps_done"] == 3 and rec["complete"]
    model, _ = load_checkpoint(first)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    readouts = ("probe", "applicability", "critic")
    stage = TrainConfig(**small, train_only=readouts)
    train_stage(model, bw_domain, Vocabulary.from_domain(bw_domain), stage, None, "test", lambda m: None)
    after = model.state_dict()
    moved = {
        name
        for name, attr in PARTS.items()
        for k in before
        if k.startswith(attr + ".") and not torch.equal(before[k], after[k])
    }
    assert moved == set(readouts), moved
    # naming an unknown part, or training some parts of a fresh model, is refused before any work
    for stages in ([TrainConfig(**small), TrainConfig(**small, train_only=("decoder",))], [stage]):
        with pytest.raises(RecipeError, match="unknown part|first stage"):
            train_world_model(bw_domain, Recipe(mcfg, stages), tmp_path / "c.pt", log=lambda m: None)
    assert not (tmp_path / "c.pt").exists()


def test_a_new_domain_trains_by_a_recipe_and_plans(tmp_path):
    """A new domain needs nothing but its PDDL (and a seed problem, having no dedicated generator): a two-stage
    recipe trains, each stage recorded, the checkpoint loads and plans. The briefly trained model need not solve the
    problem, but what it returns is judged like any plan, and a stated guardrail holds in any plan it returns."""
    from conftest import KEYS_DOMAIN, KEYS_PROBLEM

    from eval.planning import plan_and_judge
    from planner.api import Planner
    from planner.checkpoint import load_checkpoint
    from planner.constraints import Constraint
    from planner.jepa import WorldModelConfig
    from planner.train import Recipe, TrainConfig, train_world_model
    from planner.worlds.pddl import parse_domain, parse_problem

    d = parse_domain(KEYS_DOMAIN, "keys.pddl")
    seed = parse_problem(KEYS_PROBLEM, d, "keys-1.pddl")
    stages = [
        TrainConfig("dynamics", objects=(5, 5), steps=6, batch_size=4, rollout=2, critic_weight=0),
        TrainConfig(
            "critic", objects=(5, 5), steps=2, value_batch=4, critic_weight=1, train_only=("critic",)
        ),
    ]
    recipe = Recipe(WorldModelConfig(dim=32, heads=2, encoder_layers=1, predictor_layers=1), stages)
    out = tmp_path / "keys.pt"
    rec = train_world_model(d, recipe, out, [seed], log=lambda m: None)
    assert [s["steps_done"] for s in rec["stages"]] == [6, 2] and rec["steps_total"] == 8
    assert out.exists() and out.with_suffix(".json").exists()
    model, record = load_checkpoint(out)
    assert record["domain"] == "keys" and record["recipe"] == "default" and record["complete"]
    planner = Planner(model, SearchConfig(beam_width=4, max_depth=3, time_limit=5))
    j = plan_and_judge(planner, d, seed, "keys-1.pddl")
    assert j.record.status in ("solved", "no_plan")
    assert (j.valid is None) == (j.record.status == "no_plan")  # the validator judges what is returned
    assert j.record.status == "solved" or j.record.reason
    r = planner.plan(list(seed.objects), seed.init, seed.goal, [Constraint("forbid_operator", ("take",))])
    assert r.status == "no_plan" or all(a[0] != "take" for a in r.actions)


def test_a_critic_stage_trains_the_relational_critic_alone_on_exact_labels(tmp_path, bw_domain):
    """The recipe's critic stage: the relational critic trained alone on exact steps-to-go of enumerated small
    problems; every other weight (so the latents and the decoder) stays as it was, and the planner reads its
    estimates through the probe."""
    from planner.encoding import Vocabulary
    from planner.jepa import RelationalCritic, WorldModel, WorldModelConfig
    from planner.latent import EnsembleWorld
    from planner.train import TrainConfig, train_stage

    vocab = Vocabulary.from_domain(bw_domain)
    torch.manual_seed(0)
    after = WorldModel(vocab, WorldModelConfig(dim=32, heads=2))
    assert isinstance(after.critic, RelationalCritic)  # the default kind
    old = {k: v.clone() for k, v in after.state_dict().items()}
    cfg = TrainConfig(
        steps=4, value_batch=16, value_objects=(3, 4), critic_weight=1.0, train_only=("critic",)
    )
    summary, _ = train_stage(after, bw_domain, vocab, cfg, None, "critic", lambda m: None)
    assert summary["steps_done"] == 4 and "value_mae" in summary["final_train_stats"]
    new = after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if not k.startswith("critic."))
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("critic."))
    world = EnsembleWorld(after, ["a", "b", "c", "d", "e", "f"], [0, 1])
    z = world.encode([world.fact_ids([("ontable", o) for o in "abcdef"] + [("handempty",)])])
    goal = world.fact_ids([("on", "a", "b")])
    est = world.steps_to_go(z, goal)
    assert est.shape == (1,) and torch.isfinite(est).all()
    # a caller that holds the states' fact probabilities (the search) hands them in: the critic reads those
    probs = world.fact_probs(z)
    assert torch.equal(world.steps_to_go(z, goal, probs), est)
    stacked = torch.zeros_like(probs)  # a on b, b on the table: the goal holds
    stacked[0, world.fact_ids([("on", "a", "b"), ("clear", "a"), ("handempty",)])] = 1.0
    stacked[0, world.fact_ids([("ontable", o) for o in "bcdef"] + [("clear", o) for o in "cdef"])] = 1.0
    assert not torch.equal(world.steps_to_go(z, goal, stacked), est)


def test_a_recipe_resumes_from_a_stage_on_a_checkpoint_it_made(tmp_path, bw_domain):
    """`train world-model --resume CKPT --from-stage critic`: the stages before it are kept (their weights and
    summaries), the critic starts from a new model's weights as the whole run had it there, so the run resumed
    makes the whole run's model; resuming where an earlier stage learned the same parts, from another model's
    checkpoint, or at a stage the recipe does not have is refused."""
    from planner.checkpoint import load_checkpoint
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig
    from planner.train import Recipe, RecipeError, TrainConfig, train_world_model

    stages = [
        TrainConfig("dynamics", objects=(3, 3), steps=3, batch_size=4, rollout=2, critic_weight=0),
        TrainConfig(
            "critic",
            steps=2,
            lr=1e-2,
            warmup=1,
            value_batch=8,
            value_objects=(3, 3),
            critic_weight=1,
            train_only=("critic",),
        ),
    ]
    recipe = Recipe(WorldModelConfig(dim=32, heads=2, encoder_layers=1, predictor_layers=1), stages)
    whole = tmp_path / "whole.pt"
    first = train_world_model(bw_domain, recipe, whole, log=lambda m: None)
    again = tmp_path / "again.pt"
    rec = train_world_model(bw_domain, recipe, again, log=lambda m: None, resume=(whole, "critic"))
    assert rec["stages"][0] == first["stages"][0] and rec["stages"][1]["steps_done"] == 2
    assert rec["resumed"]["from"] == str(whole) and rec["resumed"]["stages_kept"] == ["dynamics"]
    a, b = load_checkpoint(whole)[0].state_dict(), load_checkpoint(again)[0].state_dict()

    # the same model as the whole run's (to fp16 rounding: a BLAS may round by memory alignment), whose critic
    # the stage moved well past that (a critic not started anew would show)
    def close(x, y):
        return torch.allclose(x.float(), y.float(), rtol=1e-2, atol=1e-3)

    assert all(close(a[k], b[k]) for k in a)
    torch.manual_seed(stages[0].seed)
    start = WorldModel(Vocabulary.from_domain(bw_domain), recipe.model).state_dict()
    assert not all(close(a[k], start[k]) for k in a if k.startswith("critic."))
    later = Recipe(recipe.model, stages + [TrainConfig("readouts", steps=1, train_only=("probe",))])
    with pytest.raises(RecipeError, match="learned too"):
        train_world_model(bw_domain, later, tmp_path / "x.pt", log=lambda m: None, resume=(whole, "readouts"))
    with pytest.raises(RecipeError, match="no stage 'probe'"):
        train_world_model(bw_domain, recipe, tmp_path / "x.pt", log=lambda m: None, resume=(whole, "probe"))
    other = Recipe(WorldModelConfig(dim=16, heads=2, encoder_layers=1, predictor_layers=1), stages)
    with pytest.raises(RecipeError, match="not the recipe's"):
        train_world_model(bw_domain, other, tmp_path / "x.pt", log=lambda m: None, resume=(whole, "critic"))


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _same_settings(stage, config: dict) -> list[str]:
    """The fields of a recipe stage that differ from a training run's recorded configuration (fields the record
    does not have are ones its code did not have yet)."""
    from dataclasses import asdict

    return [k for k, v in asdict(stage).items() if k != "name" and k in config and _plain(v) != config[k]]


def test_the_default_recipe_is_what_made_the_committed_blocksworld_model():
    """`ami-agent train world-model --domain D` with no option runs the recipe of checkpoints/blocksworld-4ops.pt:
    its three stages equal, field by field, the three runs that made it; recipes/world-model.yaml spells out the
    same recipe."""
    import json
    from dataclasses import asdict

    from planner.train import Recipe

    recipe = Recipe()
    assert Recipe.load(ROOT / "recipes" / "world-model.yaml") == recipe
    record = json.loads((ROOT / "checkpoints" / "blocksworld-4ops.json").read_text())
    runs = record["made_by"]["runs"]
    assert len(runs) == len(recipe.stages) == 3
    for stage, run in zip(recipe.stages, runs):
        assert _same_settings(stage, run["config"]) == [], stage.name
    assert asdict(recipe.model) == runs[-1]["config"]["model"]
    mine = json.loads(json.dumps(recipe.to_dict()))
    assert mine.pop("search") == {}  # (recipes carry search settings since; this one changes none)
    # fields added after the run (the critic's goals per problem and group counts): what the run's code did then
    then = {"value_goals": 8, "value_counts": []}
    for stage in mine["stages"]:
        for k, v in then.items():
            assert stage.pop(k) == v
    assert record["config"] == mine
    assert record["reproduce"].endswith("generated_domain.pddl")  # no other option
    # the comparison can fail: another learning rate is a difference
    assert _same_settings(replace(recipe.stages[0], lr=1e-3), runs[0]["config"]) == ["lr"]


def test_the_default_recipe_is_what_made_the_committed_mystery_model():
    """checkpoints/mystery-4ops.pt is the default recipe run once on mystery's domain file, with no option."""
    import json

    from planner.train import Recipe

    record = json.loads((ROOT / "checkpoints" / "mystery-4ops.json").read_text())
    assert record["recipe"] == "default" and record["complete"]
    assert record["config"] == json.loads(json.dumps(Recipe().to_dict()))
    assert record["reproduce"] == (
        "ami-agent train world-model --domain "
        "../shared/benchmarks/planbench/instances/blocksworld/mystery/generated_domain.pddl"
    )
    assert not (ROOT / "recipes" / "mystery-4ops.yaml").exists()  # the older single-stage recipe lost


def test_the_logistics_recipe_is_what_made_the_logistics_model_and_its_default():
    """recipes/logistics.yaml made checkpoints/logistics-strips.pt, and is what `train world-model --domain
    ami_agent/worlds/logistics.pddl` runs with no option (the recipe named after the domain file)."""
    import json

    from planner.train import Recipe

    record = json.loads((ROOT / "checkpoints" / "logistics-strips.json").read_text())
    assert record["recipe"] == "recipes/logistics.yaml" and record["complete"]
    recipe = Recipe.load(ROOT / record["recipe"])
    assert record["config"] == json.loads(json.dumps(recipe.to_dict()))
    assert record["command"].split() == [
        "ami-agent",
        "train",
        "world-model",
        "--domain",
        "ami_agent/worlds/logistics.pddl",
    ]
    assert [s["name"] for s in record["stages"]] == ["dynamics", "readouts", "critic"]
    assert record["minutes_total"] <= 30.5 and record["checkpoint_bytes"] < 20e6
    # the world's search settings travel in the record: the planner searches with them unless told otherwise
    from planner.api import Planner

    assert record["config"]["search"]["critic_goals"] == "each"
    planner = Planner.load(ROOT / "checkpoints" / "logistics-strips.pt", {"time_limit": 3.0})
    assert planner.search == SearchConfig(**{**record["config"]["search"], "time_limit": 3.0})


def test_a_recipe_carries_search_settings_and_refuses_unknown_ones(tmp_path):
    """A recipe's `search:` section holds the SearchConfig fields a world changes; an unknown field, a value of the
    wrong kind or an unknown strategy is refused with the file and the field named."""
    from planner.train import Recipe, RecipeError

    f = tmp_path / "r.yaml"
    f.write_text("search:\n  strategy: best-first\n  critic_weight: 3\n  critic_goals: each\n")
    r = Recipe.load(f)
    assert r.search == {"strategy": "best-first", "critic_weight": 3.0, "critic_goals": "each"}
    assert r.to_dict()["search"] == r.search and r.stages == Recipe().stages
    for text, match in [
        ("search:\n  beam: 4\n", "unknown field.*beam"),
        ("search:\n  beam_width: wide\n", "beam_width must be a int"),
        ("search:\n  critic_goals: max\n", "critic_goals must be one of joint, each"),
        ("search:\n  ensemble_readout: median\n", "ensemble_readout must be one of probability, logit"),
        ("search:\n  fact_threshold: 1.5\n", "fact_threshold must be between 0 and 1"),
        ("searches: {}\n", "sections"),
    ]:
        f.write_text(text)
        with pytest.raises(RecipeError, match=match):
            Recipe.load(f)


def test_the_planner_searches_with_the_settings_its_checkpoint_carries(tmp_path, bw_domain):
    """`Planner.load` searches with the record's `config.search` (the recipe's) over SearchConfig's defaults; a dict
    the caller gives changes some settings on top (a budget), a whole SearchConfig replaces them."""
    from planner.api import Planner
    from planner.checkpoint import save_checkpoint
    from planner.encoding import Vocabulary
    from planner.jepa import WorldModel, WorldModelConfig

    model = WorldModel(Vocabulary.from_domain(bw_domain), WorldModelConfig(dim=16, heads=2))
    ckpt = tmp_path / "w.pt"
    save_checkpoint(model, ckpt, {"config": {"search": {"strategy": "best-first", "beam_width": 4}}})
    planner = Planner.load(ckpt, {"time_limit": 3.0})
    assert planner.search == SearchConfig(strategy="best-first", beam_width=4, time_limit=3.0)
    assert not planner.escalate  # best-first from the start: nothing to escalate to
    assert Planner.load(ckpt).search == SearchConfig(strategy="best-first", beam_width=4)
    whole = SearchConfig(beam_width=8)
    assert Planner.load(ckpt, whole).search is whole
