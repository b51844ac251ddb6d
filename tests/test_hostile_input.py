"""Hostile input on the command line and in user files: every case is one line (`error: ...`,
exit 2) and leaves no run folder, or is skipped with one line; nothing hangs or allocates for real.

Runs go in-process (`in_process`) and stop at validation, so each case takes well under a second.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import TINY, in_process
from .test_hostile import one_error_line

BASE = [*TINY, "trainer.max_steps=1"]


def rejected(args: list[str], tmp_path: Path, monkeypatch, capsys) -> str:
    """`reformer run <BASE> <args>` in an empty `tmp_path`: its one error line (exit 2), and no
    folder left behind."""
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *BASE, *args], capsys)
    assert code == 2, err
    assert list(tmp_path.iterdir()) == []
    return one_error_line(err)


# ------------------------------------------------------------------------------ 1. devices


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-1", "cuda:", "gpu", "cuda:0:1"])
def test_a_device_that_is_not_one_is_refused_at_validation(device, tmp_path, monkeypatch, capsys):
    assert rejected([f"trainer.device={device}"], tmp_path, monkeypatch, capsys) == (
        f"error: trainer.device='{device}' is not one of: auto, cpu, cuda, cuda:N, mps")


# ------------------------------------------------------------------------------ 2. n_buckets=[]


def test_no_buckets_is_refused_at_validation(tmp_path, monkeypatch, capsys):
    assert rejected(["attention=lsh", "attention.n_buckets=[]"], tmp_path, monkeypatch, capsys) == (
        "error: attention.n_buckets=[]: give an even integer >= 2, a list of them for factorised"
        " buckets, or null for the paper's default")


# ------------------------------------------------------------------------------ 3. ~group


@pytest.mark.parametrize("group", ["model", "attention", "task", "trainer", "layer"])
def test_deleting_a_config_group_is_one_line(group, tmp_path, monkeypatch, capsys):
    args = [a for a in BASE if not a.startswith((f"{group}=", f"{group}."))]
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *args, f"~{group}"], capsys)
    assert code == 2, err
    assert one_error_line(err) == (f"error: the config group '{group}' is required: ~{group} cannot"
                                   f" remove it; choose an option with {group}=<name>")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ 11. self_mask_value


@pytest.mark.parametrize("value", ["-1e40", "1e39", "-inf", "nan"])
def test_a_self_mask_value_beyond_float32_is_refused(value, tmp_path, monkeypatch, capsys):
    shown = repr(float(value))
    assert rejected(["attention=full", "attention.shared_qk=true", f"attention.self_mask_value={value}"],
                    tmp_path, monkeypatch, capsys) == (
        f"error: attention.self_mask_value={shown} must be a finite float32 number (at most 3.40282e+38 in magnitude)")


# ------------------------------------------------------------------------------ 4, 5. -cd / --config-name

BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]) + "\n"


def test_an_alias_bomb_is_refused_without_expanding_it():
    from reformer_cli.yaml_guard import UnsafeYaml, check_yaml_text, expanded_size

    import yaml

    assert expanded_size(yaml.compose("a: &a [x, x]\nb: [*a, *a]")) == 1 + 2 * 1 + 3 + 1 + 2 * 3
    for text in (BOMB, "a: &a [*a]"):
        with pytest.raises(UnsafeYaml, match=r"^f.yaml expands to more than 100,000 nodes through YAML aliases"):
            check_yaml_text(text, "f.yaml")
    check_yaml_text("a: &a [1, 2]\nb: *a\n", "f.yaml")


@pytest.mark.parametrize("case", ["bomb", "broken", "loop"])
def test_a_config_dir_is_checked_before_hydra_loads_it(case, tmp_path, monkeypatch, capsys):
    user = tmp_path / "cd"
    user.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    name = {"bomb": "config", "broken": "config", "loop": "self"}[case]
    (user / f"{name}.yaml").write_text({"bomb": BOMB, "broken": "a: [1, 2\nb: :\n",
                                        "loop": "defaults:\n  - self\n"}[case])
    monkeypatch.chdir(work)
    began = time.perf_counter()
    code, err = in_process(["run", "-cd", str(user), "--config-name", name], capsys)
    assert time.perf_counter() - began < 2
    assert code == 2
    assert one_error_line(err) == {
        "bomb": f"error: {user}/config.yaml expands to more than 100,000 nodes through YAML aliases"
                " (&anchor / *alias); refusing to load it",
        "broken": f"error: {user}/config.yaml is not valid YAML: expected ',' or ']', but got ':' (line 2, column 2)",
        "loop": "error: config 'self': its defaults list includes itself (directly or through another"
                " config file); remove that entry",
    }[case]
    assert list(work.iterdir()) == []


def test_a_config_dir_goes_through_the_checks_before_hydra(tmp_path, monkeypatch, capsys):
    user = tmp_path / "cd"
    user.mkdir()
    (user / "mine.yaml").write_text("defaults:\n  - config\n  - _self_\nseed: 7\n")
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", f"--config-dir={user}", "-cn", "mine", *BASE, "trainer.batch_size=0"], capsys)
    assert code == 2
    assert one_error_line(err) == "error: trainer.batch_size=0 must be a positive integer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd"]  # no folder left


def test_resume_auto_skips_a_folder_whose_config_is_a_bomb(tmp_path, capsys):
    from reformer_cli.resume import candidates

    for name, text in (("2020-01-02_bomb", BOMB), ("2020-01-01_good", "task:\n  name: synthetic\n")):
        run = tmp_path / "synthetic" / name
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "step-00000002.pt").write_bytes(b"x")
        (run / "config.yaml").write_text(text)
    (tmp_path / "synthetic" / "2020-01-01_good" / "summary.json").write_text('["completed"]')
    began = time.perf_counter()
    found = candidates({"task": {"name": "synthetic"}}, tmp_path)
    assert time.perf_counter() - began < 2
    assert [c.folder.name for c in found] == ["2020-01-01_good"]
    assert not found[0].completed
    bomb, good = tmp_path / "synthetic" / "2020-01-02_bomb", tmp_path / "synthetic" / "2020-01-01_good"
    assert capsys.readouterr().err.splitlines() == [
        f"resume=auto: skipping {bomb}: {bomb}/config.yaml expands to more than 100,000 nodes through"
        " YAML aliases (&anchor / *alias); refusing to load it",
        f"resume=auto: {good}/summary.json is not a JSON object; taking the run as unfinished",
    ]


# ------------------------------------------------------------------------------ 6. memory

PARAMS = "the parameters with their gradients and Adam's moments"


@pytest.mark.parametrize("override, largest", [
    ("task.vocab_size=1000000000 model.loss_chunks=32", f"{PARAMS} (128,000,067,584 parameters: reduce model.d_model, model.d_ff,"
                                   " model.n_layers or task.vocab_size), 1,907.3 GiB"),
    ("trainer.batch_size=10000000", "the activations, trainer.batch_size x task.seq_len x (14 model.d_model +"
                                    " 4 model.d_ff) per layer (reduce trainer.batch_size or model.d_model), 3,356.9 GiB;"
                                    " trainer.batch_size=19054 fits (about 8.0 GiB)"),
    # SDPA computes full attention in memory linear in seq_len; shared QK builds its weights (2 layers)
    ("task.seq_len=100000 attention.shared_qk=true", "full attention's weights, trainer.batch_size x model.n_heads x task.seq_len^2"
                            " (reduce trainer.batch_size or task.seq_len, or use an attention over chunks), 4,768.4 GiB"),
])
def test_a_run_that_cannot_fit_is_refused_before_it_allocates(override, largest, tmp_path, monkeypatch, capsys):
    from reformer_cli import memory_estimate

    monkeypatch.setattr(memory_estimate, "host_memory", lambda: 8 << 30)
    line = rejected(override.split(), tmp_path, monkeypatch, capsys)
    assert line.startswith("error: this run needs about ") and " but the device has 8.0 GiB:" in line
    assert line.endswith(f"the largest term is {largest}"), line


def test_an_allocation_failure_is_one_line_naming_the_largest_term(tmp_path, monkeypatch, capsys):
    from reformer_cli import train

    def fails(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate"
                           " memory: you tried to allocate 4000000000000 bytes. Error code 12")

    monkeypatch.setattr(train, "train", fails)
    line = rejected([], tmp_path, monkeypatch, capsys)
    assert line == ("error: out of memory: the largest term of this run is the activations, trainer.batch_size x"
                    " task.seq_len x (14 model.d_model + 4 model.d_ff) per layer (reduce trainer.batch_size or"
                    " model.d_model), about 0.0 GiB")


def test_another_runtime_error_keeps_its_traceback(tmp_path, monkeypatch):
    from reformer_cli import train
    from reformer_cli.cli import main

    def fails(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(train, "train", fails)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="^a bug$"):
        main(["run", *BASE])


# ------------------------------------------------------------------------------ 12. --time-limit


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_reproduce_refuses_a_time_limit_that_is_not_a_positive_number(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["reproduce", "--profile", "smoke", "--time-limit", value], capsys)
    assert code == 2
    assert one_error_line(err) == f"error: --time-limit {float(value)} must be a positive number of seconds"
    assert list(tmp_path.iterdir()) == []
