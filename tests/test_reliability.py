"""Nothing lost, nothing poisoned (issue 14): one writer per run folder, random `kill -9`s against an
uninterrupted twin, a diverging run, a failing job in a sweep, a full disk, and one line for
every error a user can cause or meet.

Runs are tiny (a 2-layer model of width 64, length 32, at most 60 steps) and bounded in time: a
handful of kills, each run a few seconds. Runs that need no signal go in-process (no interpreter
start-up); the kill, Ctrl-C, two-writer and full-disk cases run the command line in a process.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import TINY, another_process_holding, cli_env, in_process, popen_cli, run_cli

# full attention whatever the default attention is; timing fields are the only ones that may differ
BASE = [*TINY, "attention=full"]
TIMING = ("tokens_per_s", "wall_s")


def strict_lines(path: Path) -> list[dict]:
    """metrics.jsonl read by a strict JSON parser: NaN / Infinity are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step-*.pt"))


def finite_checkpoint(path: Path) -> bool:
    from reformer_cli.finite import all_finite

    saved = torch.load(path, map_location="cpu", weights_only=True)
    return all_finite([saved["model"], saved["optimizer"]])


def one_error_line(stderr: str, expected: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def wait_for(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended with {proc.returncode} before the event")
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)


# ------------------------------------------------------------------------------ one writer


def test_two_writers_into_one_folder_one_proceeds_the_other_gets_one_line(tmp_path):
    args = ["run", *BASE, "trainer.max_steps=12", "trainer.log_every=3", "hydra.run.dir=same"]
    env = cli_env()
    procs = [subprocess.Popen([sys.executable, "-m", "reformer_cli", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = next(i for i, p in enumerate(procs) if p.returncode == 2)
    line = one_error_line(outs[loser][1], "is in use by another reformer process")
    assert f"(pid {procs[1 - loser].pid})" in line
    steps = [r["step"] for r in strict_lines(tmp_path / "same" / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(3, 13, 3))  # each step once


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch, capsys):
    """Hydra's folder pattern `outputs/<task>/<date>_<time>` gives two runs of one second the same
    name; the second is given `<date>_<time>_<run name>-2` (created exclusively, before anything is
    written)."""
    from datetime import datetime

    import hydra.core.utils

    class OneSecond(datetime):  # Hydra's `now` resolver reads this module's datetime.now()
        @classmethod
        def now(cls, tz=None):
            return datetime(2030, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hydra.core.utils, "datetime", OneSecond)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert in_process(["run", *BASE, "trainer.max_steps=3"], capsys)[0] in (0, None)
    folders = sorted(p.name for p in (tmp_path / "outputs" / "synthetic").iterdir())
    name = "2030-01-02_03-04-05_synthetic-full-standard-seed0"  # the run's name after the time
    assert folders == [name, f"{name}-2"]
    for name in folders:
        records = strict_lines(tmp_path / "outputs" / "synthetic" / name / "metrics.jsonl")
        assert all(r["step"] == 3 for r in records)  # each folder holds its own run's lines only
        assert [r["split"] for r in records if r["split"] == "train"] == ["train"]
        assert [r["split"] for r in records if r.get("final")] == ["valid"]


def test_reproduce_refuses_a_step_folder_in_use(tmp_path):
    from reformer_cli.errors import UserError
    from reformer_cli.definitions.experiments import Step
    from reformer_cli.reproduce.runner import Reproduction

    folder = tmp_path / "out" / "smoke" / "exp" / "train"
    with another_process_holding(folder) as holder:
        step = Step(experiment="exp", profile="smoke", name="train", kind="train", args=["run"])
        runner = Reproduction("smoke", [], outputs=tmp_path / "out", results=tmp_path / "results")
        with pytest.raises(UserError, match=f"in use by another process \\(pid {holder.pid}\\)"):
            runner.folders.claim(step)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie is dead, waiting for a parent to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_reproduce_children_die_with_it(tmp_path):
    """kill -9 of the runner kills the step it was running (no orphaned trainer keeps writing)."""
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    runner = subprocess.Popen(
        [sys.executable, "-c", "from pathlib import Path; from reformer_cli.reproduce.execute import execute;"
         f" execute(['-c', {child!r}], Path({str(tmp_path / 'log')!r}), 'child', {{}}, stop=lambda: False)"],
        env=cli_env(),
    )
    wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60, runner)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    runner.kill()
    runner.wait()
    wait_for(lambda: not _alive(pid), 10)


# ------------------------------------------------------------------------------ kill -9


KILLED = [*BASE, "trainer.max_steps=36", "trainer.log_every=3", "trainer.ckpt_every=4", "trainer.keep_last=2",
          "trainer.eval_every=10", "hydra.run.dir=run", "resume=auto"]


def test_random_kill9s_end_like_an_uninterrupted_twin(tmp_path, monkeypatch, capsys):
    """Three `kill -9`s at random moments (start-up, training, checkpoint writes: one every 4 steps,
    and the log window is never empty at a checkpoint), each followed by the same command: the
    metrics and the final checkpoint equal those of an uninterrupted twin, exactly."""
    twin, killed = tmp_path / "twin", tmp_path / "killed"
    twin.mkdir(), killed.mkdir()
    monkeypatch.chdir(twin)  # the twin runs in this process (no interpreter start-up)
    code, err = in_process(["run", *KILLED], capsys)
    assert code in (0, None), err
    seed = int(os.environ.get("REFORMER_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    run_dir = killed / "run"
    metrics = run_dir / "metrics.jsonl"

    def progress() -> int:
        return len(metrics.read_text().splitlines()) if metrics.is_file() else 0

    kills = []
    for attempt in range(3):
        proc = popen_cli(["run", *KILLED], killed)
        try:
            if attempt == 0:  # somewhere in start-up (before or after the lock, Hydra's files...)
                time.sleep(rng.uniform(0.2, 1.5))
            else:  # once training writes, after a random delay (many steps and checkpoint writes)
                before = progress()
                wait_for(lambda: progress() > before, 120, proc)
                time.sleep(rng.uniform(0.0, 0.25))
        except AssertionError:  # it finished first: nothing left to interrupt
            break
        finally:
            proc.kill()
            proc.wait()
        kills.append(progress())
    out = run_cli(["run", *KILLED], killed)
    assert out.returncode == 0, f"seed {seed}: " + out.stderr
    assert without_timing(strict_lines(metrics)) == without_timing(strict_lines(twin / "run" / "metrics.jsonl")), \
        f"seed {seed}, lines when killed: {kills}"
    ours, theirs = (torch.load(d / "run" / "checkpoints" / "step-00000036.pt", weights_only=True) for d in (killed, twin))
    for key in ("model",):
        assert ours[key].keys() == theirs[key].keys()
        assert all(torch.equal(ours[key][k], theirs[key][k]) for k in ours[key]), f"seed {seed}"
    assert ours["state"]["step"] == theirs["state"]["step"] == 36
    assert not list(run_dir.rglob("*.tmp"))  # orphaned temp files were removed


# ------------------------------------------------------------------------------ non-finite


# When a float32 blow-up comes depends on the CPU (one machine overflows at step 3, another at ~34),
# so the divergence is injected: the weights turn infinite after a chosen step, before any checkpoint
# (3) or after three of them (34). The guard's behaviour must not depend on which.
DIVERGING = [*BASE, "trainer.max_steps=40", "trainer.log_every=5", "trainer.eval_every=10", "trainer.ckpt_every=10"]


def poison_after(monkeypatch, bad_step: int) -> None:
    """Trainer.step fills the first weight with +inf once step `bad_step` is done."""
    from reformer_cli import train as train_module

    original = train_module.Trainer.step

    def poisoned(self, step):
        out = original(self, step)
        if step == bad_step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return out

    monkeypatch.setattr(train_module.Trainer, "step", poisoned)


def test_the_issues_nan_recipe_stops_with_one_line_and_saves_nothing_non_finite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = [*BASE, "trainer.max_steps=60", "trainer.lr=1e4", "trainer.warmup_steps=0", "trainer.log_every=50",
              "trainer.eval_every=10", "trainer.ckpt_every=10", "hydra.run.dir=nan"]
    code, err = in_process(["run", *recipe], capsys)
    assert code == 1
    one_error_line(err, "training diverged at step")
    assert all(finite_checkpoint(p) for p in checkpoints(tmp_path / "nan"))
    strict_lines(tmp_path / "nan" / "metrics.jsonl")
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("bad_step", [3, 34])
def test_a_diverging_run_keeps_only_finite_checkpoints(bad_step, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    poison_after(monkeypatch, bad_step)
    run_dir = tmp_path / "div"
    code, err = in_process(["run", *DIVERGING, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 1
    line = one_error_line(err, f"training diverged at step {bad_step + 1}")
    saved = checkpoints(run_dir)
    assert [int(p.stem.split("-")[1]) for p in saved] == list(range(10, bad_step + 1, 10))
    assert all(finite_checkpoint(p) for p in saved)
    if saved:
        assert f"the last finite checkpoint is {saved[-1]}" in line
    else:
        assert "no checkpoint was written" in line
    records = strict_lines(run_dir / "metrics.jsonl")  # strict JSON, the non-finite line flagged
    flagged = [r for r in records if r.get("nonfinite")]
    assert flagged and all(r[key] is None for r in flagged for key in r["nonfinite"])
    assert all(r["step"] > bad_step for r in flagged)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"


HEALTHY = [*BASE, "trainer.max_steps=40", "trainer.log_every=5", "trainer.eval_every=10", "trainer.ckpt_every=10"]


def test_resume_continues_from_the_last_finite_checkpoint(tmp_path, monkeypatch, capsys):
    """A run whose weights turn NaN at step 23 (injected: a real divergence's last checkpoint can be so
    large that any rate overflows the next gradient norm) stops without saving step 30; the same
    command with resume=<folder> continues from step 20 and ends like a run that never diverged."""
    from reformer_cli import train as train_module

    monkeypatch.chdir(tmp_path)
    original = train_module.Trainer.step
    poison_after(monkeypatch, 23)
    run_dir = tmp_path / "nan"
    code, err = in_process(["run", *HEALTHY, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 1
    line = one_error_line(err, "training diverged at step 24")
    saved = checkpoints(run_dir)
    assert [p.name for p in saved] == ["step-00000010.pt", "step-00000020.pt"] and all(map(finite_checkpoint, saved))
    assert f"the last finite checkpoint is {saved[-1]}" in line

    monkeypatch.setattr(train_module.Trainer, "step", original)
    code, err = in_process(["run", *HEALTHY, f"hydra.run.dir={run_dir}", f"resume={run_dir}"], capsys)
    assert code == 0, err
    records = strict_lines(run_dir / "metrics.jsonl")
    assert not any(r.get("nonfinite") for r in records)
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(5, 41, 5))  # cut back to 20
    twin = tmp_path / "twin"
    assert in_process(["run", *HEALTHY, f"hydra.run.dir={twin}"], capsys)[0] in (0, None)
    assert without_timing(strict_lines(run_dir / "metrics.jsonl")) == without_timing(strict_lines(twin / "metrics.jsonl"))
    assert all(finite_checkpoint(p) for p in checkpoints(run_dir))


# ------------------------------------------------------------------------------ sweeps


def test_a_failing_job_does_not_stop_the_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from reformer_cli.cli import main

    try:
        code = main(["run", "-m", *BASE, "trainer.max_steps=1", "trainer.lr=1e-3,-1,3e-3", "hydra.sweep.dir=sweep"])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    assert code not in (0, None)
    for job in ("0", "2"):
        assert json.loads((tmp_path / "sweep" / job / "summary.json").read_text())["status"] == "completed"
    assert "1" in out.out + out.err and "trainer.lr" in out.out + out.err
    assert "Traceback" not in out.out + out.err


# ------------------------------------------------------------------------------ disk full


def mount_namespace() -> list[str] | None:
    """An `unshare` prefix in which this user may mount a tmpfs, or None."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                                "mount -t tmpfs -o size=64k tmpfs \"$HOME\""], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return prefix
    return None


def run_on_tmpfs(args: list[str], cwd: Path, mount_options: str, keep: Path) -> subprocess.CompletedProcess:
    """`reformer <args>` with `cwd/mnt` a private tmpfs (`mount_options`); what it held is copied to `keep`."""
    prefix = mount_namespace()
    mnt = cwd / "mnt"
    mnt.mkdir()
    keep.mkdir()
    script = (f"mount -t tmpfs -o {mount_options} tmpfs {shlex.quote(str(mnt))} || exit 99; "
              f"{shlex.quote(sys.executable)} -m reformer_cli {shlex.join(args)}; rc=$?; "
              f"cp -a {shlex.quote(str(mnt))}/. {shlex.quote(str(keep))}; exit $rc")
    return subprocess.run([*prefix, "sh", "-c", script], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=300)


def test_a_full_disk_is_one_line_and_leaves_the_earlier_checkpoint_intact(tmp_path, monkeypatch, capsys):
    args = ["run", *BASE, "trainer.max_steps=20", "trainer.ckpt_every=5"]
    if mount_namespace() is not None:  # a real full disk: a tmpfs with room for one checkpoint (~1 MB)
        out = run_on_tmpfs([*args, f"hydra.run.dir={tmp_path / 'mnt' / 'run'}"], tmp_path, "size=1600k",
                           tmp_path / "kept")
        assert out.returncode != 99, out.stderr
        code, err, run_dir = out.returncode, out.stderr, tmp_path / "kept" / "run"
    else:  # a write hook: the checkpoint write runs out of space after 512 KB
        import reformer_cli.records as records

        real = records.os.fdopen

        class Full:
            def __init__(self, f):
                self.f, self.n = f, 0

            def write(self, data):
                self.n += len(data)
                if self.n > 512 << 10:
                    raise OSError(28, "No space left on device")
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        monkeypatch.setattr(records.os, "fdopen", lambda fd, mode: Full(real(fd, mode)))
        monkeypatch.chdir(tmp_path)
        run_dir = tmp_path / "run"
        code, err = in_process([*args, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2
    one_error_line(err, "disk full: cannot write")
    kept = checkpoints(run_dir)
    assert kept and all(finite_checkpoint(p) for p in kept)  # the earlier checkpoint loads
    assert not list(run_dir.rglob("*.tmp"))
    strict_lines(run_dir / "metrics.jsonl")


# ------------------------------------------------------------------------------ one line each


@pytest.mark.parametrize("override, expected", [
    ("+trainer.foo=1", "unknown config key 'trainer.foo'"),
    ("+foo=1", "unknown config key 'foo'"),
    ("trainer.weight_decay=-1", "trainer.weight_decay=-1.0 must be a finite number >= 0"),
    ("trainer.eps=-1", "trainer.eps=-1.0 must be a finite number > 0"),
    ("trainer.lr=nan", "trainer.lr=nan must be a finite number > 0"),
    ("seed=-1", "seed=-1 must be an integer"),
])
def test_rejected_values_are_one_line_and_leave_no_folder(tmp_path, monkeypatch, capsys, override, expected):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *BASE, override], capsys)
    assert code == 2
    one_error_line(err, expected)
    assert not (tmp_path / "outputs").exists()  # rejected before any folder is made


def test_full_error_still_shows_the_full_report(tmp_path, monkeypatch):
    from reformer_cli.cli import main
    from reformer_cli.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="trainer.eps"):
        main(["run", *BASE, "trainer.eps=-1"])


def test_impossible_run_folders_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    code, err = in_process(["run", *BASE, f"hydra.run.dir={tmp_path / 'file' / 'run'}"], capsys)
    assert code == 2
    one_error_line(err, f"cannot create run folder {tmp_path / 'file' / 'run'}")


@pytest.mark.skipif(os.geteuid() == 0 and mount_namespace() is None, reason="root writes anywhere without a mount")
def test_an_unwritable_run_folder_is_one_line(tmp_path):
    args = ["run", *BASE, "trainer.max_steps=2"]
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        out = run_cli([*args, f"hydra.run.dir={tmp_path / 'ro' / 'run'}"], tmp_path)
    else:
        out = run_on_tmpfs([*args, f"hydra.run.dir={tmp_path / 'mnt' / 'run'}"], tmp_path, "ro,size=64k",
                           tmp_path / "kept")
    assert out.returncode == 2
    one_error_line(out.stderr, "cannot create run folder")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder with a checkpoint (adamw, 4 steps)."""
    from reformer_cli.cli import main

    root = tmp_path_factory.mktemp("trained")
    assert main(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", f"hydra.run.dir={root / 'run'}"]) == 0
    return root / "run"


def test_resuming_with_another_optimizer_is_one_line_before_training(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    before = (run_dir / "metrics.jsonl").read_text()
    code, err = in_process(["run", *BASE, "trainer.max_steps=6", "trainer.optimizer=adafactor", "resume=auto",
                            f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2
    one_error_line(err, "was trained with trainer.optimizer=adamw, this run asks for adafactor")
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_eval_output_that_cannot_be_written_is_one_line_before_the_work(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "eval.json"
    code, err = in_process(["eval", f"checkpoint={trained}", f"output={target}", "progress=none"], capsys)
    assert code == 2
    one_error_line(err, f"cannot write {target}")
    assert not list(tmp_path.rglob("eval.json"))  # stopped before evaluating


def test_eval_output_failing_at_the_end_keeps_the_record_safe(trained, tmp_path, monkeypatch, capsys):
    import reformer_cli.evaluation as evaluation
    import reformer_cli.records as records

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "gone" / "eval.json"
    for module in (records, evaluation):  # the disk changes under it
        monkeypatch.setattr(module, "check_writable", lambda path: None)
    (tmp_path / "gone").write_text("now a file")
    code, err = in_process(["eval", f"checkpoint={trained}", f"output={target}", "progress=none",
                            "hydra.run.dir=evalrun"], capsys)
    assert code == 2
    one_error_line(err, "the record is safe in")
    record = json.loads((tmp_path / "evalrun" / "eval.json").read_text())
    assert record["step"] == 4


def test_a_second_ctrl_c_is_one_line(tmp_path):
    # long evaluations after every step: the second Ctrl-C lands while the first is being honoured
    proc = subprocess.Popen(
        [sys.executable, "-m", "reformer_cli", "run", *BASE, "task.eval_sequences=1024", "trainer.eval_every=1",
         "trainer.eval_batches=0", "trainer.max_steps=100", "hydra.run.dir=run"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in proc.stdout:
            if "valid" in line:
                proc.send_signal(signal.SIGINT)
            if "stop requested" in line:
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    one_error_line(err, "stopped at once (a second Ctrl-C)")


# `reformer run` with every checkpoint write slowed down (a pause after each chunk torch.save
# writes), and a line on stdout as each write begins, so a test can send a signal in the middle of one
SLOW_CHECKPOINT_WRITES = """
import sys, time, torch
save = torch.save
class Slow:
    def __init__(self, f): self.f = f
    def write(self, data):
        written = self.f.write(data)
        time.sleep(0.005)
        return written
    def flush(self): return self.f.flush()
def slow_save(obj, f, *args, **kwargs):
    print("checkpoint write begins", flush=True)
    return save(obj, Slow(f), *args, **kwargs)
torch.save = slow_save
from reformer_cli.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_during_a_checkpoint_write_abandons_it(tmp_path):
    """The first Ctrl-C asks for a checkpoint; a second one while it is being written stops at once:
    exit 130, one line, no part of the abandoned checkpoint left, the previous one kept and named."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHECKPOINT_WRITES, "run", *BASE, "trainer.ckpt_every=1", "trainer.eval_every=1000",
         "trainer.max_steps=1000", "hydra.run.dir=run"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    folder = tmp_path / "run" / "checkpoints"

    def half_written() -> bool:  # torch's zip writer turns a Ctrl-C this late into an error of its own
        complete = max((p.stat().st_size for p in folder.glob("step-*.pt")), default=0)
        return any(p.stat().st_size > complete // 2 for p in folder.glob(".step-*.tmp"))

    try:
        writes, stop_requested = 0, False
        for line in proc.stdout:
            if "checkpoint write begins" in line:
                writes += 1
                if stop_requested:  # the write the stop asked for (or a later one): interrupt it
                    wait_for(half_written, proc=proc)
                    proc.send_signal(signal.SIGINT)
                    break
                if writes == 2:  # step 1's checkpoint is complete
                    proc.send_signal(signal.SIGINT)
            stop_requested = stop_requested or "stop requested" in line
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    line = one_error_line(err, "stopped at once (a second Ctrl-C) at step ")
    step = int(line.split(" at step ")[1].split(";")[0])
    kept = checkpoints(tmp_path / "run")
    assert kept and kept[-1].name == f"step-{step - 1:08d}.pt"  # the abandoned step-N.pt is not there
    assert f"the last checkpoint is " in line and f"/checkpoints/{kept[-1].name}: continue" in line
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if not p.name.startswith("step-")]  # no temp
    for path in kept:
        torch.load(path, map_location="cpu", weights_only=True)  # each one whole


def test_a_ctrl_c_before_training_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    """Ctrl-C where no stop is honoured yet (here: as training is about to start)."""
    from reformer_cli import train as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_module, "train", interrupted)
    code, err = in_process(["run", *BASE, "trainer.max_steps=1", "hydra.run.dir=run"], capsys)
    assert code == 130
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_corpus_edited_in_place_is_caught(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFORMER_DATA_DIR", str(tmp_path / "data"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"the quick brown fox jumps over the lazy dog. " * 200)
    text = ["task=text", f"task.path={corpus}", "task.seq_len=32"]
    code, err = in_process(["data", "prepare", *text], capsys)
    assert code in (0, None), err
    data = bytearray(corpus.read_bytes())
    data[100] = ord("X")  # same size, other content
    corpus.write_bytes(bytes(data))
    run = [a for a in BASE if not a.startswith("task.")]
    code, err = in_process(["run", *run, *text, "trainer.max_steps=2"], capsys)
    assert code == 2
    one_error_line(err, f"{corpus} changed since it was prepared (same size, different content")
    assert not (tmp_path / "outputs").exists()  # the run's folder is not left behind


def test_fast_attention_on_a_cpu_is_one_line_before_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *TINY, "attention=lsh", "attention.impl=fast", "trainer.device=cpu"], capsys)
    assert code == 2
    one_error_line(err, "attention.impl=fast needs a CUDA device")
    assert not (tmp_path / "outputs").exists()


# ------------------------------------------------------------------------------ resume rules


def test_resume_auto_continues_across_inert_options_and_names_the_others(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", *BASE, "trainer.max_steps=8", "trainer.ckpt_every=4", "trainer.log_every=4"]
    assert in_process(args, capsys)[0] in (0, None)
    (run_dir,) = (tmp_path / "outputs" / "synthetic").iterdir()
    (run_dir / "summary.json").unlink()  # as if killed after its last checkpoint
    (run_dir / "checkpoints" / "step-00000008.pt").unlink()

    code, err = in_process([*args, "resume=auto", "trainer.lr=3e-3"], capsys)
    assert code == 2
    line = one_error_line(err, f"the newest unfinished run, {run_dir.relative_to(tmp_path)} (step 4), differs in"
                               " trainer.lr (0.003 here, 0.001 there)")
    assert "resume=" in line and len(list((tmp_path / "outputs" / "synthetic").iterdir())) == 1

    code, err = in_process([*args, "resume=auto", "trainer.progress=none"], capsys)
    assert code in (0, None), err
    assert len(list((tmp_path / "outputs" / "synthetic").iterdir())) == 1  # continued, not started over
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 8
    assert [r["step"] for r in strict_lines(run_dir / "metrics.jsonl") if r["split"] == "train"] == [4, 8]


def test_a_truncated_newest_checkpoint_falls_back_and_orphaned_temps_go(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    args = ["run", *BASE, "trainer.max_steps=8", "trainer.ckpt_every=4", "trainer.log_every=2",
            f"hydra.run.dir={run_dir}"]
    assert in_process(args, capsys)[0] in (0, None)
    reference = without_timing(strict_lines(run_dir / "metrics.jsonl"))
    newest = run_dir / "checkpoints" / "step-00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    orphan = run_dir / "checkpoints" / ".step-00000012.pt.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    (run_dir / "summary.json").unlink()
    code, err = in_process([*args, "resume=auto"], capsys)
    assert code in (0, None), err
    assert not orphan.exists()
    assert (run_dir / "checkpoints" / "step-00000008.pt.unusable").is_file()  # never chosen again
    assert without_timing(strict_lines(run_dir / "metrics.jsonl")) == reference  # from step 4, exactly
