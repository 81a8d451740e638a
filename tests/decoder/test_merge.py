"""decoder/merge.py: merged adapters compute what PEFT computes; weights are saved in the dtype they are served in."""

import json

import pytest
import torch

from decoder.api import DEFAULT_DIR


def test_merged_adapter_computes_what_peft_computes(model_dir, tmp_path):
    """decoder.merge folds W + scale * B @ A into the weights: the same logits as PEFT's adapter (float32), made
    once per adapter content and then reused."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from decoder.merge import MERGED_RECORD, merged_model

    adapter = DEFAULT_DIR / "adapter"
    if not (adapter / "adapter_config.json").exists():
        pytest.skip("no trained decoder adapter")
    folder = merged_model(model_dir, adapter, cache=tmp_path, log=lambda m: None)
    assert (folder / MERGED_RECORD).exists() and (folder / "tokenizer.json").exists()
    stamp = (folder / MERGED_RECORD).stat().st_mtime_ns
    assert merged_model(model_dir, adapter, cache=tmp_path, log=lambda m: None) == folder
    assert (folder / MERGED_RECORD).stat().st_mtime_ns == stamp  # reused, not merged again
    ids = torch.tensor([[1, 4093, 198, 504, 3458, 314, 260, 2]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        plain = base(ids).logits
        want = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-3), (got - want).abs().max()
    assert (plain - want).abs().max() > 1e-2  # the adapter changes the model: the check can fail


def test_weights_are_saved_in_the_dtype_they_are_served_in(model_dir, tmp_path):
    """An engine that casts weights as it loads them warns once per weight: the merged adapter and the base model
    are served from copies in the serving dtype (the base model itself when it already is)."""
    from decoder.merge import merged_model, served_copy

    def dtype_of(folder):
        config = json.loads((folder / "config.json").read_text())
        return str(config.get("dtype") or config.get("torch_dtype"))

    assert served_copy(model_dir, dtype_of(model_dir), cache=tmp_path) == model_dir
    other = "bfloat16" if dtype_of(model_dir) == "float32" else "float32"
    copy = served_copy(model_dir, other, cache=tmp_path)
    assert copy != model_dir and dtype_of(copy) == other and (copy / "tokenizer.json").exists()
    assert served_copy(model_dir, other, cache=tmp_path) == copy
    adapter = DEFAULT_DIR / "adapter"
    if (adapter / "adapter_config.json").exists():
        merged = merged_model(model_dir, adapter, "bfloat16", cache=tmp_path, log=lambda m: None)
        assert dtype_of(merged) == "bfloat16"
