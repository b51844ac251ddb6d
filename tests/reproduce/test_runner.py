"""`reformer reproduce`: steps in fixed folders, resumed after an interruption, never rerun once
done, records curated after each step; missing data, devices and commands skipped with one line;
a folder made by another definition refused; the time limit."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ..conftest import cli_env, run_cli

TINY = """
title: tiny
layout: matrix
paper: {source: a test, metric: accuracy, scale: 100, unit: "%", columns: [full, lsh-2], rows: {full: [100, 90]}, tolerance: 3}
profiles:
  quick:
    about: a tiny duplication task (on the CPU; the runner treats quick like any profile but smoke)
    comparable: true
    env: {OMP_NUM_THREADS: "1"}
    train:
      common: [task=synthetic, task.seq_len=16, task.vocab_size=16, task.eval_sequences=32, model=tiny,
               model.n_layers=1, trainer.batch_size=8, trainer.max_steps=MAX_STEPS, trainer.log_every=20,
               trainer.eval_every=500, trainer.eval_batches=1, trainer.ckpt_every=100000, trainer.device=cpu,
               logger=none]
      runs:
        full: [attention=full, attention.shared_qk=true]
    eval:
      common: [split=test, device=cpu]
      runs:
        full: [attention=full]
        lsh-2: [attention=lsh, attention.n_rounds=2, attention.chunk_length=4]
    bench:
      memory: [memory, --device, cpu, --depths, "1,2", --d-model, "32", --d-ff, "64", --length, "64"]
      nosuch: [nosuch]
"""


def definitions(folder: Path, max_steps: int = 1500) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY.replace("MAX_STEPS", str(max_steps)))
    return folder


def reproduce(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(["reproduce", "--profile", "quick", "--experiments", "defs", "--outputs", "out",
                    "--results", "results", *extra], cwd)


def lines(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_interrupted_moved_resumed_then_never_rerun(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for machine in (first, second):
        machine.mkdir()
        definitions(machine / "defs")
    # 1. interrupted (SIGTERM to the runner, passed on to the training run, which checkpoints);
    #    --pack writes what another machine needs to continue
    run_dir = first / "out" / "quick" / "tiny" / "full"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reformer_cli", "reproduce", "--profile", "quick", "--experiments", "defs",
         "--outputs", "out", "--results", "results", "--pack", "state.tar.gz"],
        cwd=first, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        log = run_dir / "reproduce.log"
        if log.exists() and "step 20/1500" in log.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert lines(out, "tiny/full (train) stopped"), out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 20 <= summary["steps"] < 1500
    assert not (first / "results" / "runs" / "quick" / "tiny" / "full.json").exists()
    with tarfile.open(first / "state.tar.gz") as tar:
        names = tar.getnames()
    assert "out/quick/tiny/full/reproduce.json" in names and "out/quick/tiny/full/metrics.jsonl" in names
    assert [n for n in names if n.endswith(".pt")] == [f"out/quick/tiny/full/checkpoints/step-{summary['steps']:08d}.pt"]

    # 2. on the other machine, the same command continues the run, evaluates, benchmarks; a
    #    benchmark this build does not have is skipped with one line
    with tarfile.open(first / "state.tar.gz") as tar:
        tar.extractall(second, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    run_dir = second / "out" / "quick" / "tiny" / "full"
    resumed = reproduce(second)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    for step in ("tiny/full (train)", "tiny/full__full (eval)", "tiny/full__lsh-2 (eval)", "tiny/memory (bench)"):
        assert lines(resumed.stdout, f"{step} ran: ok"), (step, resumed.stdout)
    assert "tiny: skipping 1 step(s) (nosuch): `reformer bench nosuch` is not available in this build" in resumed.stdout
    assert f"resumed from {run_dir.resolve()}/checkpoints/step-{summary['steps']:08d}.pt" in (run_dir / "reproduce.log").read_text()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [m["step"] for m in metrics if m["split"] == "train"]
    assert train_steps == list(range(20, 1501, 20))  # nothing lost or repeated across the interruption

    records = second / "results" / "runs" / "quick" / "tiny"
    assert sorted(p.stem for p in records.glob("*.json")) == ["full", "full__full", "full__lsh-2", "memory"]
    train = json.loads((records / "full.json").read_text())
    assert (train["schema"], train["kind"], train["experiment"], train["profile"], train["step"]) == (1, "train", "tiny", "quick", "full")
    assert train["status"] == "completed" and train["steps"] == 1500 and train["device"].endswith("(cpu)")
    # the curve: every periodic evaluation (valid, or valid_estimate when partial), never the final line
    periodic = [m for m in metrics if m["split"] in ("valid", "valid_estimate") and not m.get("final")]
    assert periodic and train["curve"] == [{k: v for k, v in m.items() if k != "split"} for m in periodic]
    assert train["command"].startswith("reformer run task=synthetic ")
    assert train["command"].endswith("hydra.run.dir=out/quick/tiny/full resume=auto trainer.progress=plain")
    assert train["definition"][:2] == ["run", "task=synthetic"] and "hydra.run.dir" not in " ".join(train["definition"])
    assert train["config"]["trainer"]["max_steps"] == 1500 and "checkpoint" not in json.dumps(train)
    evaluated = json.loads((records / "full__lsh-2.json").read_text())
    raw = json.loads((second / "out" / "quick" / "tiny" / "full__lsh-2" / "eval.json").read_text())
    assert evaluated["metrics"] == raw["metrics"] and evaluated["evaluated_label"] == "lsh-2"
    assert evaluated["labels"] == {"run": "full", "evaluates": "full", "as_": "lsh-2"}
    assert evaluated["checkpoint"] == "out/quick/tiny/full/checkpoints/step-00001500.pt"  # relative, not /tmp/...
    bench = json.loads((records / "memory.json").read_text())
    assert [r["depth"] for r in bench["result"]["results"]] == [1, 2, 1, 2]

    # 3. again: everything is done, nothing is rerun
    stamps = {p: p.stat().st_mtime_ns for p in (run_dir / "summary.json", second / "out/quick/tiny/full__full/eval.json")}
    again = reproduce(second)
    assert again.returncode == 3
    assert len(lines(again.stdout, "done: already done")) == 4, again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # 4. records of the current definitions (e.g. committed ones) are results: no run folder needed
    third = tmp_path / "third"
    shutil.copytree(second / "defs", third / "defs")
    shutil.copytree(second / "results", third / "results")
    recorded = reproduce(third)
    assert recorded.returncode == 3 and len(lines(recorded.stdout, "done: already recorded in results/runs/quick/tiny/")) == 4
    assert not list(third.glob("out/quick/tiny/*/reproduce.log"))

    # 5. the time limit: a step not yet started is left for the next run (exit 4)
    shutil.rmtree(second / "out/quick/tiny/full__lsh-2")
    (records / "full__lsh-2.json").unlink()
    limited = reproduce(second, "--time-limit", "0.001")
    assert limited.returncode == 4, limited.stdout
    assert lines(limited.stdout, "tiny/full__lsh-2 (eval) stopped: not started (time limit)")

    # 6. a changed definition does not continue a folder made by the old one
    definitions(second / "defs", max_steps=2000)
    changed = reproduce(second)
    assert changed.returncode == 1
    assert "out/quick/tiny/full was made by another definition of this step; delete that folder" in changed.stdout
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 1500

    # 7. the records make a page
    table = run_cli(["table", "--experiments", "defs", "--runs", "results/runs", "--out", "results", "--no-plots"], third)
    assert table.returncode == 0, table.stderr
    page = (third / "results" / "tiny.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| full | "))
    full_cell, lsh_cell = row.rstrip(" |").split(" | ")[1:3]
    assert re.fullmatch(r"\d+\.\d / 100 / [+-]?\d+\.\d", full_cell), row
    assert re.fullmatch(r"\d+\.\d / 90 / [+-]?\d+\.\d", lsh_cell), row
    assert "not comparable" not in page

    # 8. smoke records never count as done: running is the smoke profile's point
    from reformer_cli.definitions.experiments import load_experiment
    from reformer_cli.reproduce.folders import StepFolders
    from reformer_cli.reproduce.runner import Reproduction
    from reformer_cli.reproduce.steps import step_runs

    quick = load_experiment(third / "defs" / "tiny.yaml")
    step = quick.profile("quick").steps[1]  # full__full

    def recorded(step) -> bool:
        return Reproduction("quick", [quick], results=third / "results").job(step).recorded()

    assert recorded(step)
    smoke_steps = [dataclasses.replace(s, profile="smoke") for s in quick.profile("quick").steps]
    record = third / "results" / "runs" / "smoke" / "tiny" / "full__full.json"
    record.parent.mkdir(parents=True)
    shutil.copy(third / "results" / "runs" / "quick" / "tiny" / "full__full.json", record)
    smoke_runs = step_runs(smoke_steps, StepFolders(third / "out" / "smoke", third / "defs", third / "results"))
    assert smoke_runs[1].name == "full__full" and not smoke_runs[1].recorded()

    # 9. an evaluation recorded before its training run was made again, or of a training run of
    # another definition, is not an evaluation of the current one
    train_path = third / "results" / "runs" / "quick" / "tiny" / "full.json"
    trained = json.loads(train_path.read_text())
    later = {**trained, "date": "9999-01-01T00:00:00+00:00"}
    train_path.write_text(json.dumps(later))
    assert not recorded(step)
    train_path.write_text(json.dumps({**trained, "definition": [*trained["definition"], "trainer.max_steps=9"]}))
    assert not recorded(step)
    train_path.write_text(json.dumps(trained))
    assert recorded(step)


QUICK = """
title: {name}
layout: curves
profiles:
  quick:
    about: needs {what}
    comparable: true
    train:
      common: [{common}, model=tiny, task.seq_len=64, logger=none]
      runs:
        a: []
        b: [attention=lsh]
    eval:
      runs:
        again: []
"""


def test_missing_data_device_and_bad_definitions_are_one_line_each(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "needs_data.yaml").write_text(QUICK.format(
        name="needs_data", what="enwik8", common="task=enwik8, task.data_dir=<root>/no-enwik8, trainer.device=cpu"))
    (defs / "needs_gpu.yaml").write_text(QUICK.format(name="needs_gpu", what="a GPU", common="task=synthetic, trainer.device=cuda"))
    (defs / "typo.yaml").write_text(QUICK.format(name="typo", what="nothing", common="task=synthetic, trainer.max_stepz=3"))
    out = run_cli(["reproduce", "--profile", "quick", "--experiments", "defs", "--outputs", "out", "--results", "results"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr  # a failed step outranks skipped ones
    text = out.stdout
    data = lines(text, "needs_data: skipping 4 step(s) (a, a__again, b, b__again):")
    assert len(data) == 1 and "enwik8" in data[0] and "reformer data prepare task=enwik8" in data[0], text
    import torch

    if not torch.cuda.is_available():
        assert "needs_gpu: skipping 4 step(s) (a, a__again, b, b__again): needs a CUDA device" in text, text
    assert lines(text, "typo/a: failed: unknown config key 'trainer.max_stepz'"), text
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was recorded, nothing substituted
    assert not list(tmp_path.glob("out/quick/*/*/reproduce.log"))
    assert "typo: skipping 2 step(s) (a__again, b__again): their training run failed" in text


def test_usage_errors_are_one_line(tmp_path):
    out = run_cli(["reproduce", "--profile", "huge"], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: reformer reproduce: argument --profile")
    out = run_cli(["reproduce", "--profile", "smoke", "--only", "table9"], tmp_path)
    assert out.returncode == 2 and "unknown experiment(s) table9" in out.stderr and out.stderr.count("\n") == 1
    for jobs in ("0", "two"):
        out = run_cli(["reproduce", "--profile", "smoke", "--jobs", jobs], tmp_path)
        assert out.returncode == 2 and "--jobs" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    listing = run_cli(["reproduce", "--profile", "quick", "--only", "table2", "--list"], tmp_path)
    assert listing.returncode == 0 and "full__lsh-8" in listing.stdout and not (tmp_path / "outputs").exists()


# the training of the seeded and twin definitions: a tiny duplication task, 6 steps
SIX_STEPS = """\
    train:
      common: [task=synthetic, task.seq_len=16, task.vocab_size=16, task.eval_sequences=16, model=tiny,
               model.n_layers=1, trainer.batch_size=8, trainer.max_steps=6, trainer.log_every=3,
               trainer.eval_every=3, trainer.eval_batches=1, trainer.ckpt_every=100000, trainer.device=cpu,
               logger=none]
"""

SEEDED = """
title: seeded
layout: curves
paper:
  panels:
    - title: p
      runs: [a, b]
      baseline: a
      checks:
        - {claim: "b is not worse than a", run: b, baseline: a, expect: not_worse, tolerance: 0.02}
profiles:
  quick:
    about: two runs of a tiny duplication task, two seeds each
    comparable: true
    env: {OMP_NUM_THREADS: "1"}
    seeds: [0, 1]
"""+SIX_STEPS+"""      runs:
        a: [attention=full]
        b: [attention=full, attention.shared_qk=true]
    eval:
      of: [b]
      common: [split=test, device=cpu]
      runs:
        test: [attention=full]
"""


def test_seeded_steps_run_are_recorded_and_grouped_by_the_table(tmp_path):
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "seeded.yaml").write_text(SEEDED)
    listing = reproduce(tmp_path, "--list")
    assert listing.returncode == 0, listing.stderr
    names = [line.split()[0] for line in listing.stdout.splitlines() if line.startswith("    ")]
    assert names == ["a@s0", "a@s1", "b@s0", "b@s0__test", "b@s1", "b@s1__test"]
    # the listed command is the one the runner runs: an evaluation names the checkpoint it evaluates
    (evaluation,) = [line for line in listing.stdout.splitlines() if line.split()[:1] == ["b@s1__test"]]
    assert f"reformer eval checkpoint={Path('out') / 'quick' / 'seeded' / 'b@s1'} " in evaluation
    assert f"output={Path('out') / 'quick' / 'seeded' / 'b@s1__test' / 'eval.json'}" in evaluation
    out = reproduce(tmp_path, "--jobs", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    # two at once: a@s1 was claimed (its marker written) before a@s0 finished training
    runs = tmp_path / "out" / "quick" / "seeded"
    assert (runs / "a@s1" / "reproduce.json").stat().st_mtime < (runs / "a@s0" / "summary.json").stat().st_mtime
    folder = tmp_path / "results" / "runs" / "quick" / "seeded"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "a@s0.json", "a@s1.json", "b@s0.json", "b@s0__test.json", "b@s1.json", "b@s1__test.json"]
    records = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    for seed in (0, 1):
        record = records[f"a@s{seed}"]
        assert record["seed"] == seed and record["labels"] == {"run": "a", "seed": seed}
        assert record["definition"][-1] == f"seed={seed}"
        assert (tmp_path / "out" / "quick" / "seeded" / f"a@s{seed}" / "summary.json").is_file()
    assert records["b@s1__test"]["labels"]["evaluates"] == "b@s1"
    assert records["a@s0"]["final"] != records["a@s1"]["final"]  # the seed reaches training
    # run again: every step is done, nothing reruns
    again = reproduce(tmp_path)
    assert again.returncode == 0 and len(lines(again.stdout, "already")) == 6, again.stdout
    # the table groups the seed records of each run: a mean over 2 seeds, a verdict from 2 paired seeds
    table = run_cli(["table", "--runs", "results/runs", "--out", "pages", "--experiments", "defs", "--no-plots"], tmp_path)
    assert table.returncode == 0, table.stderr
    page = (tmp_path / "pages" / "seeded.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert len(rows) == 2 and all("(2 seeds)" in row for row in rows), page
    assert "b − a:" in page and "(2 seeds), tolerance 0.02: **" in page, page


TWIN = """
title: TITLE
layout: curves
paper:
  source: a test
  published: curves only
  panels:
    - {title: p, runs: [RUNS], baseline: BASE}
profiles:
  quick:
    about: a tiny duplication task
    comparable: true
    env: {OMP_NUM_THREADS: "1"}
"""+SIX_STEPS+"""      runs:
RUNDEFS
"""


def test_a_run_another_result_recorded_is_copied_not_trained(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    same = "[attention=full, attention.shared_qk=true]"
    (defs / "one.yaml").write_text(TWIN.replace("TITLE", "one").replace("RUNS", "a").replace("BASE", "a")
                                   .replace("RUNDEFS", f"        a: {same}"))
    # b is a's very command; c is too but has an evaluation, which needs its own checkpoint; d differs
    two = (TWIN.replace("TITLE", "two").replace("RUNS", "b, c, d").replace("BASE", "b")
           .replace("RUNDEFS", f"        b: {same}\n        c: {same}\n        d: [attention=full]")
           + "    eval:\n      of: [c]\n      common: [split=test, device=cpu]\n      runs:\n        test: [attention=full]\n")
    (defs / "two.yaml").write_text(two)
    out = reproduce(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    (copied,) = lines(out.stdout, "two/b (train)")
    assert "done: the same run as one/a: its record copied" in copied, out.stdout
    for trained in ("one/a (train)", "two/c (train)", "two/d (train)"):
        assert "ran: ok" in lines(out.stdout, trained)[0], out.stdout
    runs, records = tmp_path / "out" / "quick", tmp_path / "results" / "runs" / "quick"
    assert not (runs / "two" / "b").exists() and (runs / "two" / "c" / "summary.json").is_file()
    a, b = (json.loads((records / name).read_text()) for name in ("one/a.json", "two/b.json"))
    assert b["copied_from"] == "one/a" and (b["experiment"], b["step"], b["labels"]) == ("two", "b", {"run": "b"})
    assert {k: v for k, v in b.items() if k not in ("experiment", "step", "labels", "copied_from")} == \
        {k: v for k, v in a.items() if k not in ("experiment", "step", "labels")}
    # c, trained here from the same command, ends where a did: what makes the copy honest
    c = json.loads((records / "two" / "c.json").read_text())
    assert c["final"] == a["final"] and c["curve"] == a["curve"]
    # run again: b's copy is its record now; the page names where it came from
    again = reproduce(tmp_path)
    assert "already recorded" in lines(again.stdout, "two/b (train)")[0], again.stdout
    table = run_cli(["table", "--runs", "results/runs", "--out", "pages", "--experiments", "defs", "--no-plots"], tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Trained once for two results (the very same command): `b` is `one/a`." in (tmp_path / "pages" / "two.md").read_text()
