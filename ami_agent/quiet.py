"""Quiet by default: the commands show the conversation and their own progress, not the libraries' log lines and
warnings (vLLM's engine start, transformers, torch). `ami-agent --verbose` leaves them as they are. Environment
variables are set before the libraries are imported and are inherited by vLLM's engine processes, which also import
the command's main module again (multiprocessing's spawn), and so run this before vLLM logs at import time."""

from __future__ import annotations

import logging
import os
import warnings

LOGGERS = ("vllm", "transformers", "torch", "peft", "httpx", "uvicorn.error", "langgraph")


def quiet(on: bool = True) -> None:
    if not on:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # c10's own warnings (vLLM's NUMA binding notice)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the engine processes' Python warnings too
    warnings.filterwarnings("ignore")
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
