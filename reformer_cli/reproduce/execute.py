"""Running one step's command: `python -m reformer_cli ...` as a child process, its output
appended to the step's log (and echoed with --verbose), stopped with SIGTERM when the runner is
told to stop (time limit, SIGINT, SIGTERM): a training run then saves a checkpoint and exits.
A child never outlives the runner: on Linux it is killed when the runner dies, even by
`kill -9` (PR_SET_PDEATHSIG), so a rerun never finds an orphaned trainer still writing its folder
(the folder's lock would refuse the second one anyway, run_folder.py)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

# the folder holding the reformer_cli package: the child imports this very code
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up here, not in the forked child


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel kill the child when this process dies (Linux), or None.
    The kernel ties it to the thread that starts the child (the runner's main thread, or a worker
    of `--jobs`, which lives until every step has ended: schedule.py): a child started from a
    short-lived thread would die with that thread."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def execute(argv: list[str], log_path: Path, shown: str, extra_env: dict[str, str], *,
            stop: Callable[[], bool], echo: TextIO | None = None) -> tuple[int, list[str]]:
    """Run `python <argv>` with its output appended to `log_path` (headed by `$ shown`); returns
    (exit code, its last lines). Once `stop()` is true the child gets SIGTERM, once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **extra_env}
    env["PYTHONPATH"] = str(PACKAGE_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("WANDB_SILENT", "true")
    tail: list[str] = []
    with open(log_path, "a") as log:
        log.write(f"$ {shown}\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            errors="replace", preexec_fn=die_with_parent(),
        )

        def copy() -> None:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n"))
                del tail[:-50]
                if echo is not None:
                    echo.write("    " + line)
                    echo.flush()

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        signalled = False
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if not signalled and stop():
                    proc.send_signal(signal.SIGTERM)
                    signalled = True
        reader.join(timeout=10)
    return code, tail
