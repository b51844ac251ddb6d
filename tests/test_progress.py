"""Progress a user can read: plain lines with step, loss, metric, tokens/s, elapsed and ETA (a log
file); a bar from step 0 with messages printed above it, never onto its line, and taken down
before the last message."""

from __future__ import annotations

import io
import logging
import re

from reformer_cli.progress import BarProgress, PlainProgress, clock


def test_a_plain_line_carries_step_loss_metric_throughput_elapsed_and_eta(caplog):
    progress = PlainProgress(300, "run")
    with caplog.at_level(logging.INFO, logger="reformer"):
        progress.start(0)
        progress.report(120, {"loss": 4.85, "accuracy": 0.0081, "tokens/s": 12345.6})
    line = caplog.messages[-1]
    assert re.fullmatch(r"step 120/300  loss 4\.85  accuracy 0\.0081  tokens/s 12,346  elapsed 0:00  eta 0:00", line), line
    assert clock(3725) == "1:02:05" and clock(65) == "1:05" and clock(None) == "-"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_from_step_0_and_messages_never_land_on_its_line():
    from rich.console import Console

    screen = Terminal()
    handler = logging.StreamHandler(screen)  # what Hydra's console handler is on a terminal
    root = logging.getLogger()
    others = root.handlers[:]  # handlers earlier tests left (Hydra's, on streams since closed)
    for other in others:
        root.removeHandler(other)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        bar = BarProgress(100, "run", console=Console(file=screen, force_terminal=True, width=100))
        bar.start(0)
        shown_at_start = screen.getvalue()
        logging.getLogger("reformer").info("stop requested: finishing this step")
        bar.report(10, {"loss": 2.5, "accuracy": 0.5, "tokens/s": 1000.0})
        bar.finish("done in 0:01")
        handler.flush()
    finally:
        root.removeHandler(handler)
        for other in others:
            root.addHandler(other)
    assert "0/100" in shown_at_start  # before any step finished
    text = screen.getvalue()
    # each line as the terminal finally shows it: the part after the last carriage return
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line.rsplit("\r", 1)[-1]) for line in text.split("\n")]
    message = next(line for line in lines if "stop requested" in line)
    assert message.startswith("stop requested")  # on a line of its own, not after the bar
    assert lines[-2] == "done in 0:01" and lines[-1] == ""  # the bar is not redrawn after the last line
    assert "100" in text[: text.index("done in")]
