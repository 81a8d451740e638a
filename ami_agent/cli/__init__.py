"""The `ami-agent` command line. Every user-facing failure is one clear message on stderr and exit status 2,
never a traceback. Commands live in the modules beside this one; importing them registers them on `app`."""

from __future__ import annotations

import typer

from ami_agent.cli import bench, chat, decoding, evaluate, train, world  # noqa: F401  (registers the commands)
from ami_agent.cli.common import UserError, app, err
from planner.worlds.errors import WorldError


def _terminated(signum, frame):
    raise KeyboardInterrupt  # unwinds like Ctrl-C: vLLM's engine processes are shut down, not orphaned


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    from decoder.backends import BackendError
    from decoder.base_model import ModelError
    from planner.train import CheckpointError

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc = app(args=argv, standalone_mode=False)
    except (WorldError, ModelError, UserError, CheckpointError, BackendError, FileNotFoundError) as e:
        err.print(f"error: {e}", markup=False)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as e:
        # click's own usage errors (typer vendors click, so duck-type rather than import its classes)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return e.exit_code
        if type(e).__name__ == "Abort":
            return 1
        raise
    return rc if isinstance(rc, int) else 0
