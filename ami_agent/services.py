"""What the agent's nodes call: its worlds (each a domain, its English, its reader and its planner), the decoder
(started on first use) and the free-phrasing reader. Nodes get these passed in; they hold no state of a conversation
(that is the graph's, in SQLite)."""

from __future__ import annotations

import atexit
import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ami_agent.perceive import Perception, Reader, perceive
from ami_agent.reader import ADAPTER as READER_ADAPTER
from ami_agent.reader import READER_DIR, Reading, read
from decoder.api import DEFAULT_DIR, Decoder
from decoder.backends import make_backend
from decoder.base_model import cache_dir, resolve_base_model
from planner.api import Planner
from planner.worlds.nl import NLConfig, Verbalizer
from planner.worlds.pddl import Domain, load_domain

WORLDS_DIR = Path(__file__).resolve().parent / "worlds"
CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def on_own_thread(fn, *args):
    """fn(*args) on a thread that ends with it. PyTorch's CPU build runs its parallel operations on OpenMP
    (libgomp): a thread that runs one keeps a pool of worker threads for as long as it lives, and once more threads
    hold pools than there are cores, libgomp stops letting its idle workers spin, so each operation wakes them from
    sleep. Models loaded on the caller's thread left it holding a pool, and the planner then ran 1.7x slower on the
    threads LangGraph runs nodes on (2 cores). Loading on a thread of its own leaves the caller holding none."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def settle() -> None:
    """What is loaded lives as long as the process: the garbage collector need not walk it again (with vLLM and
    the models loaded, about 800,000 objects, which each full collection during a search went through). They are
    handed back at exit, where extension modules check that their objects were freed."""
    gc.collect()
    gc.freeze()
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)


@dataclass
class AgentConfig:
    backend: str = "auto"  # auto | vllm | transformers | vllm-server
    url: str | None = None  # vLLM server (backend vllm-server)
    memory: Path | None = None  # SQLite file; default <cache>/agent.sqlite
    model_dir: Path | None = None
    decoder_dir: Path | None = None
    # the planner's budget: expansions (the same compute alone or under load), and a wall-clock cap. 2500
    # expansions are ~10 s for a 4-5 block problem with the machine to itself; under load (8-16 requests at once)
    # a wall-clock budget alone starved searches that needed a few hundred expansions
    plan_expansions: int = 2500
    plan_seconds: float = 30.0
    chat_tokens: int = 256

    @property
    def budget(self) -> dict:
        """The planner's budget, set over each world's own search settings (its checkpoint's recipe)."""
        return {"time_limit": self.plan_seconds, "max_expansions": self.plan_expansions}


@dataclass
class World:
    name: str
    domain: Domain
    verbalizer: Verbalizer
    reader: Reader
    planner: Planner


def make_world(domain: Domain, verbalizer: Verbalizer, checkpoint: Path, budget: dict) -> World:
    if not Path(checkpoint).exists():
        raise FileNotFoundError(
            f"no world model for domain '{domain.name}' at {checkpoint}: train one with `ami-agent train world-model`"
        )
    return World(domain.name, domain, verbalizer, Reader(verbalizer), Planner.load(checkpoint, budget))


def blocksworld() -> tuple[Domain, Verbalizer]:
    """The default world: PlanBench's 4-operator blocksworld with its English (packaged with the agent)."""
    d = load_domain(WORLDS_DIR / "blocksworld.pddl")
    return d, Verbalizer(d, NLConfig.load(WORLDS_DIR / "blocksworld.yaml"))


def packaged_worlds() -> list[tuple[Domain, Verbalizer]]:
    """The other worlds packaged with the agent (ami_agent/worlds/NAME.pddl with its English NAME.yaml) whose world
    model is committed (checkpoints/DOMAIN.pt): logistics. A request in a world's phrasing goes to that world."""
    out = []
    for f in sorted(WORLDS_DIR.glob("*.pddl")):
        english = f.with_suffix(".yaml")
        if f.stem == "blocksworld" or not english.exists():
            continue
        d = load_domain(f)
        if (CHECKPOINTS / f"{d.name}.pt").exists():
            out.append((d, Verbalizer(d, NLConfig.load(english))))
    return out


class Services:
    def __init__(self, config: AgentConfig, backend=None):
        """backend: a serving backend the caller already runs (decoder.backends, e.g. a started vLLM engine), used
        instead of starting one from `config.backend`; the caller closes it, not the agent."""
        self.config = config
        d, vb = blocksworld()
        # the default world: chat, clarifying questions and free phrasing go here
        self.world = make_world(d, vb, CHECKPOINTS / "blocksworld-4ops.pt", config.budget)
        self.worlds: dict[str, World] = {self.world.name: self.world}
        for d, vb in packaged_worlds():
            self.add_world(d, vb)
        self.model_dir = Path(resolve_base_model(str(config.model_dir) if config.model_dir else None))
        self.memory_path = Path(config.memory or cache_dir() / "agent.sqlite")
        self.backend = backend
        self._decoder: Decoder | None = None
        self._lock = threading.Lock()
        self._reader_loaded = False

    def add_world(self, domain: Domain, verbalizer: Verbalizer, checkpoint: Path | None = None) -> World:
        """Another world the agent reads, plans and speaks in (e.g. PlanBench's mystery blocksworld, read through
        its own English templates); its world model is checkpoint (default checkpoints/DOMAIN.pt). The decoder
        needs a projector for it (`ami-agent train decoder --world ...`)."""
        if domain.name not in self.worlds:
            ckpt = checkpoint or CHECKPOINTS / f"{domain.name}.pt"
            self.worlds[domain.name] = make_world(domain, verbalizer, ckpt, self.config.budget)
        return self.worlds[domain.name]

    def perceive(self, text: str, previous: dict | None) -> tuple[World, Perception]:
        """The world whose English reads text (the previous problem's world first), and its perception. The
        templates of every world are tried before the LoRA reader reads free phrasing for the default world."""
        first = self.worlds.get((previous or {}).get("world", ""), self.world)
        order = [first] + [w for w in self.worlds.values() if w is not first]
        fallback = asked = None
        for w in order:
            p = perceive(text, w.reader, previous if w is first else None)
            if p.kind in ("problem", "followup"):
                return w, p
            if p.kind == "clarify" and p.reader == "types":  # in a world's own names, asking what is missing
                asked = asked or (w, p)
            fallback = fallback or (w, p)
        if asked is not None:
            return asked
        if self.has_reader and first is self.world:
            return first, perceive(text, first.reader, previous, self.read_free)
        return fallback

    @property
    def decoder(self) -> Decoder:
        with self._lock:
            if self._decoder is None:
                backend = self.backend or make_backend(self.config.backend, self.model_dir, self.config.url)
                self._decoder = Decoder(backend, self.model_dir, self.config.decoder_dir or DEFAULT_DIR)
                settle()
            return self._decoder

    def reader_backend(self):
        """(the serving backend with the LoRA reader adapter loaded, its tokenizer)."""
        dec = self.decoder
        with self._lock:
            if not self._reader_loaded:
                # merged into its own engine: a reading is ~30 tokens, and a decode step on the LoRA path is
                # ~2.5x slower (docs/results.md); the reader is on every free-phrasing turn
                dec.backend.add_adapter(READER_ADAPTER, READER_DIR / "adapter", merge=True)
                self._reader_loaded = True
        return dec.backend, dec.tokens.tok

    def read_free(self, text: str) -> Reading:
        """Free phrasing -> the reader adapter's reading (ami_agent/reader.py), parsed."""
        backend, tok = self.reader_backend()
        return read(backend, tok, [text], self.world.reader.vb)[0]

    @property
    def has_reader(self) -> bool:
        return (READER_DIR / "adapter" / "adapter_config.json").exists()

    def close(self) -> None:
        # (a backend handed in is its owner's to close)
        if self._decoder is not None and self.backend is None:
            self._decoder.backend.close()
