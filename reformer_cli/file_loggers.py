"""Loggers that write files into the run folder, readable without any server: TensorBoard event
files (`<run>/tensorboard/`, the optional tensorboard package) and `<run>/metrics.csv` (no
dependency). Both continue a resumed run where its metrics.jsonl stops, so a value logged after the
last checkpoint of an interrupted run is not shown twice: TensorBoard hides those events
(`purge_step`), the CSV drops those rows.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from .errors import UserError
from .records import MetricsLog, open_for_append, write_text_atomic

TENSORBOARD_DIR = "tensorboard"
CSV_FILE = "metrics.csv"
CSV_HEADER = ("step", "metric", "value")


def resumed_step(run_dir: Path) -> int:
    """The last step metrics.jsonl holds (0 for a new run): a resumed run has cut it back to its
    checkpoint before the loggers start."""
    return max((r["step"] for r in MetricsLog(Path(run_dir) / "metrics.jsonl").read()), default=0)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class TensorboardLogger:
    run_id: str | None = None

    def __init__(self, run_dir: Path):
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("logger=tensorboard needs the tensorboard package: pip install 'reformer-cli[tensorboard]'"
                            ) from None
        self.folder = Path(run_dir) / TENSORBOARD_DIR
        start = resumed_step(run_dir)
        self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=start + 1 if start else None)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for key, value in _numbers(metrics).items():
            self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()

    def summarize(self, values: dict[str, Any]) -> None:
        """TensorBoard has no run summary: the final evaluation is already in the history (log)."""

    def finish(self, exit_code: int = 0) -> None:
        self._writer.close()


class CsvLogger:
    """metrics.csv: `step,metric,value` rows (long format: the train and valid records log
    different keys), appended and flushed as they come."""

    run_id: str | None = None

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CSV_FILE
        start = resumed_step(run_dir)
        if self.path.is_file():  # a resumed run: keep the rows up to its checkpoint
            kept = [row for row in self._rows() if row[0].isdigit() and int(row[0]) <= start]
            write_text_atomic(self.path, self._text([list(CSV_HEADER), *kept]))
        else:
            write_text_atomic(self.path, self._text([list(CSV_HEADER)]))

    def _rows(self) -> list[list[str]]:
        with open(self.path, newline="") as f:
            return list(csv.reader(f))[1:]

    @staticmethod
    def _text(rows: list[list[Any]]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()

    def log(self, metrics: dict[str, Any], step: int) -> None:
        rows = [[step, key, repr(value)] for key, value in _numbers(metrics).items()]
        with open_for_append(self.path) as f:
            f.write(self._text(rows))

    def summarize(self, values: dict[str, Any]) -> None:
        """A CSV has no summary: the final evaluation is already one of its rows (log)."""

    def finish(self, exit_code: int = 0) -> None:
        pass
