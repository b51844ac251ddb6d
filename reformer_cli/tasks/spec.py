"""What a task is, in one object: a `TaskSpec` holds everything the rest of the package asks of a
task by name, so a new task is one module (its spec and its batches) plus one config file.

* `name`, `schema`: the config group option `task=<name>` and its typed schema (a dataclass whose
  fields are the task's keys; `conf/task/<name>.yaml` starts from `/schema/task/<name>`).
* `check(cfg)`: the checks the schema cannot express (ConfigError, one line); the sequence length
  is checked for every task before it.
* `build(cfg, seed)`: the `Task` (tasks/base.py) that makes the batches and the metrics.
* `metric`: the headline metric of summaries and tables; `metrics`: every metric its evaluation
  reports, each with its direction (True: higher is better).
* `byte_tokens`: its tokens are the 256 byte values followed by the start token (vocabulary 257),
  so a byte model made elsewhere can be mapped onto it (`reformer import hf`).
* Data on disk, for the tasks `reformer data prepare` fills (`prepared = True`): where the files
  go, preparing and loading them, and what `reformer data verify` says of their source.

Nothing here imports torch: the config checks run before torch loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import _choice
from ..data.paths import data_root, task_data_dir
from ..errors import UserError
from ..primitives.task_registry import task_specs

# the metrics every task's evaluation reports (Task.metrics), with their direction
COMMON_METRICS = {"loss": False, "accuracy": True}


class TaskSpec:
    name: str
    schema: type
    metric: str = "loss"
    # every metric a run of this task logs under valid/ -> higher is better
    metrics: dict[str, bool] = COMMON_METRICS
    prepared: bool = False  # its data is prepared on disk by `reformer data prepare`
    byte_tokens: bool = False  # tokens: byte b is id b (0..255), the start token 256
    # what `reformer sample` draws for it (decoding/by_task.py): "text", "images", "copies"; "": none
    samples: str = ""

    def check(self, cfg: Any) -> None:
        """ConfigError (one line) for a value the schema's types allow but the task does not."""

    def build(self, cfg: Any, seed: int) -> Any:
        """The task's batches and metrics (a tasks.base.Task) for a run of `seed`."""
        raise NotImplementedError

    def higher_is_better(self, metric: str | None = None) -> bool:
        """Whether a larger value of `metric` (default: the headline metric) is better."""
        return self.metrics[metric or self.metric]

    # --- data on disk (prepared tasks)

    # how the usage of `reformer data` describes the task's data
    data_usage: str = ""
    # what `--no-verify` skips for this task ("the MD5 check (enwik8)"); empty: the option is refused
    official_checks: str = ""
    # what `--source` is for this task; empty: the option is refused
    source_help: str = ""

    def default_data_dir(self, cfg: Any) -> Path:
        """The folder of the task's files when `task.data_dir` is not set."""
        return data_root() / self.name

    def prepared_dir(self, cfg: Any) -> Path:
        """Where the prepared split files and manifest.json are (the data folder by default)."""
        return task_data_dir(cfg)

    def prepare(self, cfg: Any, *, source: str | None, verify: bool, force: bool) -> Any:
        """Prepare the task's files (data.bytes.PrepareResult); `refuse_options` has checked the options."""
        raise UserError(f"task={self.name} is generated on the fly: it needs no data")

    def load(self, cfg: Any) -> tuple[Path, dict]:
        """(folder, manifest) of the prepared files, checked against the config; DataError otherwise."""
        raise NotImplementedError

    def provenance(self, manifest: dict) -> str:
        """What `reformer data verify` says of the prepared files' source."""
        source = manifest["source"]
        if source.get("verified"):
            return "official checks passed"
        return f"official checks were SKIPPED at prepare ({', '.join(source.get('checks_skipped', []))})"

    # what the task reads instead of a `--source` ("task.path")
    reads: str = "the files in task.data_dir"
    # why `--no-verify` means nothing for this task
    no_official_checks: str = "its data has no official checks"

    def refuse_options(self, source: str | None, verify: bool) -> None:
        """UserError for `--source` or `--no-verify` given to a task that does not take it."""
        if source is not None and not self.source_help:
            takers = "/".join(f"task={s.name}" for s in task_specs() if s.source_help)
            raise UserError(f"--source is for {takers}; task={self.name} reads {self.reads}")
        if not verify and not self.official_checks:
            takers = " and ".join(s.name for s in task_specs() if s.official_checks)
            raise UserError(f"--no-verify is for {takers}: {self.no_official_checks}")

    # --- `reformer bench data`

    # the task whose prepared layout (and default length) the benchmark fakes for this one
    bench_layout: str | None = None

    def bench_splits(self, train_bytes: int) -> dict:
        """The prepared layout `reformer bench data` fills with random bytes, about `train_bytes`
        of train split: {"sizes": {split: bytes}, "shape_tail", "suffix", "variant", "params"}."""
        raise NotImplementedError

    def bench_config(self, cfg: Any, folder: Path, manifest: dict) -> None:
        """Point the task config `cfg` at the prepared `folder` with what its manifest records."""
        cfg.data_dir = str(folder)

    def bench_prepare_hint(self, folder: Path) -> str:
        """The `reformer data prepare` command that makes `folder` what the benchmark reads."""
        return f"reformer data prepare task={self.name} task.data_dir={folder}"


DATA_VERIFY = ("auto", "size", "full")  # what a run start checks of the prepared files (data/manifest.py)


class PreparedTaskSpec(TaskSpec):
    """A task whose data `reformer data prepare` puts on disk (with a manifest) before any run."""

    prepared = True

    def check(self, cfg: Any) -> None:
        _choice("task.verify", cfg.verify, DATA_VERIFY)
