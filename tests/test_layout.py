"""The code's layout: imports run one way (worlds, planner, decoder, the agent's core, eval, then the CLI and the
server on top), at module level (the CLI alone imports inside its commands, for a fast start; vLLM, an optional
dependency, is imported where it is used); the agent's answer path never loads the symbolic simulator; the README and
the CLI stay within their budgets."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("planner", "decoder", "ami_agent", "eval")
# what each layer may import from the project: itself and the layers below it
LAYERS = [
    ("planner.worlds", ("planner.worlds",)),
    ("planner", ("planner",)),
    ("decoder", ("planner", "decoder")),
    ("ami_agent", ("planner", "decoder", "ami_agent")),
    ("eval", ("planner", "decoder", "ami_agent", "eval")),
]
TOP = ("ami_agent.cli", "ami_agent.server")  # may import anything
SIMULATOR = ("planner.worlds.strips", "planner.worlds.plans", "planner.worlds.oracle", "planner.worlds.env")
SIMULATOR += ("planner.worlds.generate", "planner.data", "planner.values", "decoder.data", "decoder.train")


def _modules():
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            yield name, ast.parse(f.read_text())


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node, node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name


def _layer(module: str):
    return next(
        (allowed for prefix, allowed in LAYERS if module == prefix or module.startswith(prefix + ".")), None
    )


def test_imports_run_one_way():
    wrong = []
    for name, tree in _modules():
        if name.startswith(TOP):
            continue
        allowed = _layer(name)
        for _, target in _imports(tree):
            if target.split(".")[0] in PACKAGES and not any(
                target == a or target.startswith(a + ".") for a in allowed
            ):
                wrong.append(f"{name} imports {target}")
        assert allowed is not None, name
    assert not wrong, wrong


def test_imports_sit_at_module_level():
    inner = []
    for name, tree in _modules():
        top = {id(n) for n in tree.body}
        for node, target in _imports(tree):
            if (
                id(node) not in top
                and not name.startswith("ami_agent.cli")
                and target.split(".")[0] != "vllm"
            ):
                inner.append(f"{name}: {target} (line {node.lineno})")
    assert not inner, inner


def test_the_agent_never_loads_the_simulator():
    """The agent checks its answers with the world model, never with the simulator: importing the agent, its
    server and its nodes loads none of the simulator's modules (nor the training data made with them)."""
    code = (
        "import sys, ami_agent.agent, ami_agent.server, ami_agent.nodes, ami_agent.cli.chat; "
        f"print(sorted(m for m in sys.modules if m.startswith({SIMULATOR!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_check_above_can_fail():
    """The same check on a module that does use the simulator finds it (the test above can fail)."""
    code = f"import sys, eval.planning; print(sorted(m for m in sys.modules if m.startswith({SIMULATOR!r})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "planner.worlds.plans" in out.stdout


def test_readme_and_cli_stay_within_their_budgets():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    calls = 0
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            calls += len(re.findall(r"\b(?:Option|add_argument)\(", f.read_text()))
    assert calls <= 90, calls


@pytest.mark.parametrize("doc", ["planner", "decoder", "agent", "evaluation", "results"])
def test_docs_pages_exist(doc):
    assert (ROOT / "docs" / f"{doc}.md").exists()
