"""`reformer bench speed` and `reformer bench step` on CPU at tiny sizes: the records (markdown,
JSON with the contract's keys, PNG), failures and OOM as rows, the kernels through the harness
under the interpreter, and one-line errors. Nothing is written into results/."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from reformer_cli.bench import speed, step

from ..conftest import run_cli

TINY = ["--device", "cpu", "--tokens", "128", "--lengths", "32,64", "--heads", "1", "--d-head", "16",
        "--chunk", "16", "--rounds", "1,2", "--warmup", "0", "--reps", "1"]
SPEED_KEYS = {"kind", "device", "date", "torch", "triton", "command", "tokens", "heads", "d_head", "causal", "dtype",
              "chunk_length", "rows"}
ROW_KEYS = {"method", "impl", "rounds", "length", "batch", "ms", "fwd_ms", "tokens_per_s", "peak_bytes",
            "ratio_to_full", "error"}


def test_speed_writes_markdown_json_and_plot(tmp_path, capsys):
    out, extra = tmp_path / "out", tmp_path / "elsewhere" / "speed.json"
    assert speed.main([*TINY, "--out", str(out), "--json", str(extra)]) == 0
    record = json.loads((out / "speed.json").read_text())
    assert json.loads(extra.read_text()) == record
    assert SPEED_KEYS <= set(record) and record["kind"] == "speed" and record["tokens"] == 128
    assert record["causal"] is True and record["dtype"] == "fp32" and record["impl"] == "reference"
    assert "reformer bench speed" in record["command"] and "--lengths 32,64" in record["command"]
    rows = record["rows"]
    assert all(ROW_KEYS <= set(r) for r in rows)
    assert [(r["length"], r["method"]) for r in rows] == [(32, "full"), (32, "lsh-1"), (32, "lsh-2"),
                                                          (64, "full"), (64, "lsh-1"), (64, "lsh-2")]
    assert [r["batch"] for r in rows] == [4, 4, 4, 2, 2, 2]  # batch x length = tokens
    for r in rows:
        assert r["error"] is None and r["ms"] > 0 and r["fwd_ms"] > 0 and r["peak_bytes"] is None  # no CUDA peak
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["length"] / (r["ms"] / 1e3))
        full = next(f for f in rows if f["method"] == "full" and f["length"] == r["length"])
        assert r["ratio_to_full"] == pytest.approx(r["ms"] / full["ms"])
    assert rows[0]["impl"] == "sdpa-default" and rows[1]["impl"] == "reference" and rows[1]["rounds"] == 1
    text = (out / "speed.md").read_text()
    assert record["device"] in text and record["date"] in text and "| 64 | 2 | lsh-2 | reference |" in text
    assert "not the GPU yardstick" in text
    png = (out / "speed.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "lsh-2" in capsys.readouterr().out


def test_speed_writes_nothing_on_cpu_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert speed.main([*TINY, "--lengths", "32", "--rounds", "1"]) == 0
    assert not (tmp_path / "results").exists()


def test_speed_with_the_kernels_under_the_interpreter(tmp_path):
    """--impl fast runs the Triton kernels (interpreted on a CPU) through the same harness."""
    js = tmp_path / "s.json"
    assert speed.main([*TINY, "--lengths", "32", "--rounds", "2", "--impl", "fast", "--json", str(js)]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert [(r["method"], r["impl"], r["error"]) for r in rows] == [("full", "sdpa-default", None), ("lsh-2", "fast", None)]


def test_a_failing_or_out_of_memory_method_is_a_row(monkeypatch, tmp_path, capsys):
    real = speed.lsh_row

    def lsh_row(problem, length, rounds, impl, semantics="paper"):
        if rounds == 2:
            raise_oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

            def forward():
                raise raise_oom
            return speed.contender(speed.Row("lsh-2", impl, 2, length, 1), problem, forward, [], (1,))
        return real(problem, length, rounds, impl, semantics)

    monkeypatch.setattr(speed, "lsh_row", lsh_row)
    monkeypatch.setitem(sys.modules, "reformer_pytorch", None)  # peers that are not installed
    monkeypatch.setitem(sys.modules, "transformers", None)
    js = tmp_path / "s.json"
    assert speed.main([*TINY, "--lengths", "32", "--peers", "--json", str(js)]) == 0
    rows = {r["method"]: r for r in json.loads(js.read_text())["rows"]}
    assert rows["lsh-2"]["error"] == "OOM" and rows["lsh-2"]["ms"] is None and rows["lsh-2"]["ratio_to_full"] is None
    assert rows["lsh-1"]["error"] is None
    assert set(rows) == {"full", "lsh-1", "lsh-2"}  # peers not installed are not rows
    record = json.loads(js.read_text())
    missing = {m["method"]: m["reason"] for m in record["missing"]}
    assert missing["reformer-pytorch-4"].startswith("not installed")
    assert set(missing) == {"reformer-pytorch-dedup-4", "reformer-pytorch-4", "hf-lsh-4"}
    assert all(r["ms"] is None or isinstance(r["ms"], float) for r in record["rows"])
    text = speed.markdown(record)
    assert "Not measured (not installed):" in text and "- reformer-pytorch-4: not installed" in text
    assert "| not installed" not in text  # never in a number column
    out = capsys.readouterr().out
    assert "missing: reformer-pytorch-4: not installed" in out


def test_replot_rebuilds_markdown_and_png(tmp_path):
    out = tmp_path / "out"
    assert speed.main([*TINY, "--lengths", "32", "--rounds", "1", "--out", str(out)]) == 0
    (out / "speed.png").unlink()
    (out / "speed.md").unlink()
    assert speed.main(["--replot", str(out / "speed.json")]) == 0
    assert (out / "speed.png").exists() and (out / "speed.md").read_text().startswith("# Attention speed")


def test_bucket_factors_follow_trax_above_128():
    def timed(mode: str, length: int, chunk: int) -> list[int]:
        return speed.Problem(0, 1, 1, chunk, "fp32", True, torch.device("cpu"), mode).factors(length)

    assert timed("auto", 4096, 64) == [128]
    assert timed("auto", 65536, 64) == [64, 32]  # 2048 buckets, 48 rotation columns
    assert timed("single", 65536, 64) == [2048]  # one factor at any length (the model's default splits it)
    assert speed.n_buckets_for("single", 65536, 64) == [2048]
    assert timed("16,8", 65536, 64) == [16, 8]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lengths", "1k"], ["--lengths"]),
        (["--buckets", "3,4"], ["even"]),
        (["--dtype", "fp8"], ["--dtype"]),
        (["--device", "cuda:7"], ["cuda"]),
        (["--replot", "missing.json"], ["--replot"]),
    ],
)
def test_speed_bad_options_are_one_line_errors(args, words, capsys):
    if args[:1] == ["--device"] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exit_:
        speed.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert all(w in err for w in words)


def test_fast_impl_on_cpu_without_the_interpreter_is_a_one_line_error(monkeypatch, capsys):
    from reformer_cli.attention.fast import runtime

    monkeypatch.setattr(runtime, "INTERPRET", False)
    with pytest.raises(SystemExit):
        speed.main([*TINY, "--impl", "fast"])
    err = capsys.readouterr().err
    assert err.startswith("error: --impl fast needs a CUDA device")


def test_step_record(tmp_path):
    out = tmp_path / "out"
    args = ["--device", "cpu", "--batch", "2", "--length", "32", "--chunk", "8", "--d-model", "32", "--d-ff", "32",
            "--heads", "2", "--vocab", "16", "--steps", "2", "--warmup", "1", "--out", str(out)]
    assert step.main(args) == 0
    record = json.loads((out / "train_step.json").read_text())
    assert record["kind"] == "train_step" and record["batch"] == 2 and record["length"] == 32
    assert record["model"]["d_model"] == 32 and record["model"]["rounds"] == 4 and record["command"].startswith(
        "reformer bench step")
    assert [(r["method"], r["impl"]) for r in record["rows"]] == [("lsh-4", "reference"), ("full", "sdpa")]
    assert all(r["error"] is None and r["ms"] > 0 and r["loss"] > 0 for r in record["rows"])
    assert all(r["repeats"] == 2 and r["ms_min"] <= r["ms"] <= r["ms_max"] for r in record["rows"])
    assert record["repeats"] == 2 and "interleaved" in record["timing"]
    text = (out / "train_step.md").read_text()
    assert "| lsh-4 | reference |" in text and record["device"] in text and "min-max" in text


def test_step_times_the_methods_in_turn(monkeypatch):
    """bench step hands every method's step to one interleaved timing, with --repeats."""
    seen = []
    real = step.time_interleaved

    def spy(fns, device, **kw):
        seen.append((list(fns), kw["warmup"], kw["reps"]))
        return real(fns, device, **kw)

    monkeypatch.setattr(step, "time_interleaved", spy)
    args = ["--device", "cpu", "--batch", "1", "--length", "16", "--chunk", "8", "--d-model", "16", "--d-ff", "16",
            "--heads", "2", "--vocab", "16", "--repeats", "3", "--warmup", "1"]
    record = step.run(step.parser().parse_args(args), args)
    assert seen == [(["lsh-reference", "full"], 1, 3)]
    assert [r["repeats"] for r in record["rows"]] == [3, 3]


def test_step_fast_on_cpu_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        step.main(["--device", "cpu", "--methods", "lsh-fast"])
    assert capsys.readouterr().err.startswith("error: lsh-fast needs a CUDA device")


def test_benchmarks_run_from_the_command_line(tmp_path):
    result = run_cli(["bench", "speed", *TINY, "--lengths", "32", "--rounds", "1", "--json", "s.json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "s.json").read_text())["kind"] == "speed"
    result = run_cli(["bench", "step", "--device", "cpu", "--methods", "full", "--batch", "1", "--length", "16",
                      "--chunk", "8", "--d-model", "16", "--d-ff", "16", "--heads", "2", "--steps", "1",
                      "--json", "t.json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["method"] == "full"


def test_benchmarks_import_no_hydra_omegaconf_or_wandb(tmp_path):
    """The GPU machine has torch and triton only: importing and running the benchmarks must not
    need hydra, omegaconf or wandb."""
    code = (
        "import sys\n"
        "for name in ('hydra', 'omegaconf', 'wandb'):\n"
        "    sys.modules[name] = None\n"
        "from reformer_cli.cli import main\n"
        "assert main(['bench', 'step', '--device', 'cpu', '--methods', 'lsh-reference,full', '--batch', '1',"
        " '--length', '16', '--chunk', '8', '--d-model', '16', '--d-ff', '16', '--heads', '2', '--steps', '1']) == 0\n"
        f"sys.exit(main(['bench', 'speed', *{TINY!r}, '--lengths', '32', '--rounds', '1', '--peers']))\n"
    )
    import subprocess

    from ..conftest import cli_env

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_speed_times_both_lsh_semantics_when_asked(tmp_path):
    """`--semantics paper,across`: each length gets the paper's LSH and the trax v2 / HF one, named
    apart, each computing what it says (the across rows equal the reference with those keywords)."""
    record = speed.run(speed.parser().parse_args([*TINY, "--rounds", "2", "--semantics", "paper,across"]), [])
    methods = [(r["length"], r["method"]) for r in record["rows"]]
    assert methods == [(32, "full"), (32, "lsh-2"), (32, "lsh-across-2"), (64, "full"), (64, "lsh-2"),
                       (64, "lsh-across-2")]
    notes = {r["method"]: r["note"] for r in record["rows"] if r["method"] != "full"}
    assert "the paper" in notes["lsh-2"] and "trax v2, HF" in notes["lsh-across-2"]
    assert record["semantics"] == ["paper", "across"] and speed.label("lsh-across-2") == "LSH-2 across buckets"


def test_profile_splits_the_time_into_stages(tmp_path):
    """`reformer bench profile`: per-stage milliseconds that add up to the total, the largest
    kernels, markdown and JSON (on the CPU: the reference's ops, tiny sizes)."""
    from reformer_cli.bench import profile

    out = tmp_path / "out"
    record = profile.run(profile.parser().parse_args(
        ["--device", "cpu", "--tokens", "64", "--lengths", "32", "--rounds", "2", "--chunk", "8", "--calls", "1",
         "--semantics", "paper,across", "--out", str(out)]), [])
    assert [(p["length"], p["rounds"], p["semantics"]) for p in record["profiles"]] == [(32, 2, "paper"),
                                                                                       (32, 2, "across")]
    for p in record["profiles"]:
        assert p["total_ms"] > 0 and sum(p["stages_ms"].values()) == pytest.approx(p["total_ms"])
        assert p["top_kernels"] and all(k["ms"] > 0 for k in p["top_kernels"])
    assert profile.stage_of("lsh_forward_kernel") == "attention forward"
    assert profile.stage_of("void cub::DeviceSegmentedRadixSortKernel<...>") == "sort"
    assert profile.stage_of("lsh_backward_kernel") == "backward" and profile.stage_of("aten::copy_") == "other"
    assert json.loads((out / "profile.json").read_text())["kind"] == "lsh_profile"
    text = (out / "profile.md").read_text()
    # the stage table only where stages were recognised (the CPU reference's ops may all be `other`)
    staged = [p for p in record["profiles"] if profile.recognised(p)]
    assert ("| length | rounds | semantics | total ms |" in text) == bool(staged), text
    assert all(k["name"][:40] in text for p in record["profiles"] for k in p["top_kernels"][:3])  # the top-ops table


def test_timing_warms_up_every_callable_then_interleaves_them():
    """time_interleaved: each callable is called `warmup` times before any is timed, then each
    repeat times every callable once, the order rotating; a fake clock makes the numbers exact."""
    from reformer_cli.bench.common import time_interleaved

    calls: list[str] = []
    now = [0.0]

    def clock() -> float:
        return now[0]

    def callable_(name: str, seconds: float):
        def fn() -> None:
            calls.append(name)
            now[0] += seconds
        return fn

    timings, failed = time_interleaved({"a": callable_("a", 0.001), "b": callable_("b", 0.003)}, torch.device("cpu"),
                                       warmup=2, reps=4, clock=clock)
    assert not failed
    assert calls[:4] == ["a", "b", "a", "b"]  # every callable warmed up before the first timed call
    assert calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # one of each per repeat, the order rotating
    assert timings["a"].median == pytest.approx(1.0) and timings["b"].median == pytest.approx(3.0)
    assert timings["a"].repeats == 4 and timings["a"].spread == pytest.approx(0.0)


def test_timing_keeps_going_when_one_callable_fails():
    from reformer_cli.bench.common import time_interleaved

    def boom() -> None:
        raise RuntimeError("no")

    timings, failed = time_interleaved({"ok": lambda: None, "bad": boom}, torch.device("cpu"), warmup=0, reps=3)
    assert set(timings) == {"ok"} and timings["ok"].repeats == 3 and str(failed["bad"]) == "no"


def test_speed_times_forward_and_backward_of_every_method_in_turn(monkeypatch):
    """bench speed hands every method's forward + backward and forward alone of one length to a
    single interleaved timing (not one after another), and records median, min-max and repeats."""
    from reformer_cli.bench import common

    seen: list[list[str]] = []
    real = common.time_interleaved

    def spy(fns, device, **kw):
        seen.append(list(fns))
        return real(fns, device, **kw)

    monkeypatch.setattr(speed, "time_interleaved", spy)
    record = speed.run(speed.parser().parse_args([*TINY, "--lengths", "32", "--repeats", "3"]), [])
    assert seen == [["0 fwd+bwd", "0 fwd", "1 fwd+bwd", "1 fwd", "2 fwd+bwd", "2 fwd"]]  # full, lsh-1, lsh-2
    assert record["repeats"] == 3 and "interleaved" in record["timing"]
    for r in record["rows"]:
        assert r["repeats"] == 3 and r["ms_min"] <= r["ms"] <= r["ms_max"]
        assert r["fwd_ms_min"] <= r["fwd_ms"] <= r["fwd_ms_max"]


def test_a_forward_slower_than_forward_and_backward_is_a_warning():
    row = dict(length=256, method="lsh-2", ms=157.0, ms_min=150.0, ms_max=160.0, fwd_ms=432.0, fwd_ms_min=420.0,
               fwd_ms_max=440.0)
    (line,) = speed.inversions([row])
    assert line.startswith("warning: length 256 lsh-2: forward alone 432.000 ms exceeds") and "\n" not in line
    assert speed.inversions([{**row, "fwd_ms": 100.0}]) == []
    assert speed.inversions([{**row, "fwd_ms": 165.0}]) == []  # within the spread (20 ms)


def test_profile_prints_the_largest_ops_and_only_recognised_stages(capfd):
    """On a CPU: a table of the --top largest ops by self CPU time with their share of the total;
    the stage table keeps only the stages some profile recognised; the profiler's own lines are not printed."""
    from reformer_cli.bench import profile

    record = profile.run(profile.parser().parse_args(
        ["--device", "cpu", "--tokens", "64", "--lengths", "32", "--rounds", "1", "--chunk", "8", "--calls", "1",
         "--top", "4"]), [])
    (p,) = record["profiles"]
    top = p["top_kernels"]
    assert len(top) == 4 and [k["ms"] for k in top] == sorted((k["ms"] for k in top), reverse=True)
    assert all(k["share"] == pytest.approx(k["ms"] / p["total_ms"]) for k in top) and sum(k["share"] for k in top) <= 1
    out, err = capfd.readouterr()
    assert "op (self time)" in out and "% of total" in out and top[0]["name"][:30] in out
    assert "profiler_start" not in out + err and "profiler_stop" not in out + err
    fake = dict(p, stages_ms={**{s: 0.0 for s, _ in profile.STAGES}, "sort": 1.0, "other": 2.0})
    head, _ = profile.stage_table([fake])
    assert head[4:] == ["sort", "other"]
    assert not profile.recognised(dict(p, stages_ms={"hash": 0.0, "other": 3.0})) and profile.recognised(fake)
