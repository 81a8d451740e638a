"""The install leaves an environment where the LLM stack imports together (the torchvision trap)."""

import importlib.util
import subprocess
import sys


def test_stack_imports_together():
    code = (
        "import transformers, peft, vllm, langgraph, langgraph.checkpoint.sqlite, torch; "
        "from transformers import LlamaConfig, LlamaForCausalLM; print(torch.__version__)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith("2.13.0")


def test_mismatched_vision_audio_packages_are_absent():
    for name in ("torchvision", "torchaudio", "torchcodec"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed: `import transformers` may break"


def test_gguf_wheel_is_present():
    from decoder.base_model import find_gguf

    assert find_gguf().stat().st_size > 50_000_000
