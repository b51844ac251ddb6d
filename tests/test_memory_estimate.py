"""The memory estimate against a measured peak, and the long text run of the hostile-input report
(`task=text task.seq_len=20000 attention.chunk_length=4`, killed at 23.5 GB at step 0) refused in one
line before it allocates."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from .conftest import in_process
from .memory_peak import measure_step
from .test_hostile import one_error_line


def test_the_estimate_is_near_the_measured_peak_of_a_step(tmp_path):
    """One LSH step of the default model and batch at length 1,024 with chunks of 4 (hash projections,
    windows and sorted vectors all count) in a fresh process: the estimate is at or above its peak
    within a loose factor (the allocator's and the CPU's share differ from machine to machine), for
    the whole process and for what the step adds to it."""
    got = measure_step(["task=synthetic", "logger=none", "attention=lsh", "task.seq_len=1024",
                        "attention.chunk_length=4"], tmp_path)
    assert 0.8 * got["peak"] <= got["estimate"] <= 4 * got["peak"], got
    # what the step adds to the process as it was before it, and what the estimate leaves for that
    step, step_estimate = got["peak"] - got["before_step"], got["estimate"] - got["before_step"]
    assert 0.8 * step <= step_estimate <= 4 * step, got


def test_the_long_text_run_with_one_bucket_factor_is_refused_on_a_24_gb_machine(tmp_path, monkeypatch, capsys):
    """The paper's 10,000 buckets as one factor (the default splits them, attention_settings.py): at
    the default batch of 8 its hash projections alone are 23.8 GiB: refused with the estimate, the
    memory there is and the batch that fits, before the corpus is even read."""
    from reformer_cli import memory_estimate

    monkeypatch.setattr(memory_estimate, "host_memory", lambda: int(23.5 * 2**30))
    monkeypatch.chdir(tmp_path)
    # the corpus does not exist: were the run not refused, it would stop at its data, not allocate
    code, err = in_process(["run", "task=text", f"task.path={tmp_path / 'corpus.txt'}", "task.seq_len=20000",
                            "attention.chunk_length=4", "attention.n_buckets=10000", "logger=none"], capsys)
    assert code == 2 and list(tmp_path.iterdir()) == []
    line = one_error_line(err)
    assert line.startswith("error: this run needs about 27.1 GiB but the device has 23.5 GiB: the largest term is"
                           " LSH's hash projections, "), line
    assert line.endswith(", 23.8 GiB; trainer.batch_size=6 fits (about 20.5 GiB)"), line


def test_on_cuda_the_estimate_warns_instead_of_refusing(monkeypatch):
    """The estimate's constants were measured on the CPU; on CUDA an allocation failure is a
    one-line error of its own, so a run past the estimate goes ahead with a warning."""
    import reformer_cli.memory_estimate as m
    from reformer_cli.errors import UserError

    cfg = OmegaConf.create({"trainer": {"device": "cuda"}})
    monkeypatch.setattr(m, "available_memory", lambda device: 1 << 30)

    def too_big(config, available):
        raise UserError("this run needs about 9.0 GiB but the device has 1.0 GiB")

    monkeypatch.setattr(m, "check_fits", too_big)
    assert m.check_run_fits(cfg).startswith("warning: this run needs about 9.0 GiB")
    cfg.trainer.device = "cpu"
    with pytest.raises(UserError, match="needs about 9.0 GiB"):
        m.check_run_fits(cfg)


def test_only_a_run_small_against_the_host_keeps_freed_memory(monkeypatch):
    """Keeping freed memory fragments the heap (up to twice the peak measured): a run keeps it only
    while twice its estimate stays under a quarter of the host's memory."""
    import reformer_cli.memory_estimate as m
    from reformer_cli.hydra_entry import compose

    monkeypatch.setattr(m, "host_memory", lambda: int(23.5 * 2**30))
    small = compose("config", ["task=synthetic", "model=table2", "task.seq_len=256", "trainer.batch_size=32",
                               "attention.n_rounds=4", "attention.chunk_length=8", "logger=none"])
    long = compose("config", ["task=text", "task.path=corpus.txt", "task.seq_len=20000", "attention.chunk_length=4",
                              "logger=none"])
    assert m.keeps_freed_memory(small)
    assert not m.keeps_freed_memory(long)
    monkeypatch.setattr(m, "host_memory", lambda: None)
    assert not m.keeps_freed_memory(small)
