"""Running one step's command: `python -m reformer_cli ...` as a child process, its output
appended to the step's log (and echoed with --verbose), stopped with SIGTERM when the runner is
told to stop (time limit, SIGINT, SIGTERM): a training run then saves a checkpoint and exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

# the folder holding the reformer_cli package: the child imports this very code
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


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
            errors="replace",
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
