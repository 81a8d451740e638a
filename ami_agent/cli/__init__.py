"""The `ami-agent` command line. Every user-facing failure is one clear message on stderr and exit status 2,
never a traceback. Commands live in the modules beside this one; importing them registers them on `app`."""

from __future__ import annotations

import os
import signal
import sys
import threading

from ami_agent.quiet import quiet

# before any library is imported: in this process, and in the processes vLLM starts (they import the main module
# again, with the environment this leaves)
VERBOSE = "--verbose" in sys.argv[1:] or os.environ.get("AMI_AGENT_VERBOSE") == "1"
quiet(not VERBOSE)

import typer  # noqa: E402

from ami_agent.cli import bench, chat, decoding, evaluate, train, world  # noqa: E402, F401  (registers the commands)
from ami_agent.cli.common import UserError, app, err  # noqa: E402
from planner.worlds.errors import WorldError  # noqa: E402


@app.callback()
def options(
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the libraries' log lines and warnings (vLLM, torch)"
    ),
):
    """AMI Agent: an assistant that plans in a learned latent space, then puts the plan into words."""
    if verbose:  # (this process was left loud at import; the processes it starts inherit this)
        os.environ["AMI_AGENT_VERBOSE"] = "1"


def _terminated(signum, frame):
    raise KeyboardInterrupt  # unwinds like Ctrl-C: vLLM's engine processes are shut down, not orphaned


# errors of the libraries the commands load, reported as one line too (named, not imported: `ami-agent world
# check` needs neither torch nor vLLM, whose modules define them)
LIBRARY_ERRORS = {
    "decoder.backends.BackendError",
    "decoder.base_model.ModelError",
    "planner.checkpoint.CheckpointError",
}


def _user_facing(e: BaseException) -> bool:
    if isinstance(e, (WorldError, UserError, FileNotFoundError)):
        return True
    return any(f"{c.__module__}.{c.__qualname__}" in LIBRARY_ERRORS for c in type(e).__mro__)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc = app(args=argv, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as e:
        if _user_facing(e):
            err.print(f"error: {e}", markup=False)
            return 2
        # click's own usage errors (typer vendors click, so duck-type rather than import its classes)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return e.exit_code
        if type(e).__name__ == "Abort":
            return 1
        raise
    return rc if isinstance(rc, int) else 0
