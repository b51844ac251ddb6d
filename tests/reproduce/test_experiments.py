"""experiments/*.yaml: every result has the three profiles, every command of every profile
composes to a valid config (so a typo fails here, not an hour into a GPU session), and the smoke
profile is honest: CPU only, never the real datasets, never substituted into a quick/paper run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reformer_cli.eval_arguments import EvalArguments
from reformer_cli.evaluation import merge_attention
from reformer_cli.config import validate_attention, validate_eval
from reformer_cli.errors import ConfigError
from reformer_cli.hydra_entry import compose
from reformer_cli.definitions.experiments import EXPERIMENTS_DIR, ORDER, PROFILES, load_experiment, load_experiments, resolve
from reformer_cli.reproduce.plan import compose_run as _compose_run

_composed: dict = {}


def compose_run(overrides: list[str]):
    """compose_run, once per distinct command (the tests compose the same runs several times)."""
    key = tuple(overrides)
    if key not in _composed:
        _composed[key] = _compose_run(list(overrides))
    return _composed[key]

_evals: dict = {}


def compose_eval(overrides: list[str]):
    """The eval config of these arguments, validated, once per distinct list (every row of
    Table 2 evaluates with the same ten column arguments)."""
    key = tuple(overrides)
    if key not in _evals:
        cfg = compose("eval", ["checkpoint=somewhere", *overrides])
        validate_eval(cfg)
        _evals[key] = cfg
    return _evals[key]


EXPERIMENTS = load_experiments()
STEPS = [(e.name, p, s) for e in EXPERIMENTS for p in e.profiles for s in e.profile(p).steps]
# every result has these; `cpu` (a scaled-down result for a 2-core machine) only where it fits
REQUIRED_PROFILES = ("smoke", "quick", "paper")


def resolved(step, tmp: Path) -> list[str]:
    """The step's arguments with fixed placeholder paths (`tmp` is not used: the same command
    composes the same way in every test, and data folders are never touched)."""
    root = Path("/nonexistent/reproduce")
    return [resolve(a, experiments=EXPERIMENTS_DIR, root=root, step_dir=root / "step") for a in step.args]


def test_every_paper_result_has_three_profiles():
    assert [e.name for e in EXPERIMENTS] == list(ORDER)
    for e in EXPERIMENTS:
        assert set(REQUIRED_PROFILES) <= set(e.profiles) <= set(PROFILES), e.name
        for name, profile in e.profiles.items():
            assert profile.steps, (e.name, name)
            assert profile.comparable == (name == "paper"), (e.name, name)
            assert profile.about and profile.estimate, (e.name, name)
            assert bool(profile.label) == (name in ("cpu", "quick")), (e.name, name)  # a scaled-down page says so first


@pytest.mark.parametrize("experiment,profile", [(e.name, p) for e in EXPERIMENTS for p in e.profiles])
def test_every_command_composes_to_a_valid_config(experiment, profile, tmp_path):
    e = next(x for x in EXPERIMENTS if x.name == experiment)
    trained = {}
    for step in e.profile(profile).steps:
        args = resolved(step, tmp_path)
        if step.kind == "train":
            trained[step.name] = compose_run(args[1:])
        elif step.kind == "eval":
            cfg = compose_eval(args[1:])
            run_cfg = trained[step.evaluates]
            chosen = None if cfg.attention is None else OmegaConf.to_container(cfg.attention, resolve=True)
            merged = merge_attention(OmegaConf.to_container(run_cfg.attention, resolve=True), chosen,
                                     EvalArguments.parse(args).explicit)
            validate_attention(OmegaConf.create(merged), int(run_cfg.task.seq_len))
        elif step.kind == "bench":
            import importlib

            parser = importlib.import_module(f"reformer_cli.bench.{args[1]}").parser
            parser().parse_args([*args[2:], "--json", "x.json"])  # an unknown option exits (one line)
        elif step.kind == "prepare":
            assert args[:2] == ["data", "prepare"]
            committed = any(a.startswith("task.path=") and "experiments" in a for a in args)
            named = any(a.startswith("task.sha256=") for a in args)
            assert committed or named, "prepare only committed corpora, or local files named by their sha256"


def test_table2_definitions_fill_every_cell_of_the_paper_table():
    e = next(x for x in EXPERIMENTS if x.name == "table2")
    paper = e.paper
    assert list(paper["columns"]) == ["full", "lsh-8", "lsh-4", "lsh-2", "lsh-1"]
    assert list(paper["rows"]) == ["full", "lsh-4", "lsh-2", "lsh-1"]
    rows = [*paper["rows"], *e.beyond_paper["rows"]]
    columns = [*paper["columns"], *e.beyond_paper["columns"]]
    assert e.beyond_paper["rows"] == ["full-noself", "full-raw", "lsh-2-across"]
    assert e.beyond_paper["columns"] == ["full-noself", "lsh-2-across", "full-raw", "full-minus32", "full-raw-self1e4"]
    assert {c["column"] for c in e.beyond_paper["checks"]} == {"full-raw", "full-minus32", "full-raw-self1e4"}
    for profile in e.profiles.values():
        names = {s.name for s in profile.steps if s.kind == "eval"}
        assert names == {f"{r}__{c}" for r in rows for c in columns}, profile.name
        # a column means one attention for every row: the full column asks for the self mask
        # explicitly, since an evaluation otherwise keeps the trained model's own setting
        evals = {s.name: s.args for s in profile.steps if s.kind == "eval"}
        assert "attention.self_mask=true" in evals["full-noself__full"]
        assert "attention.self_mask=false" in evals["full__full-noself"]
        for col in ("full", "full-noself", "full-raw", "full-minus32", "full-raw-self1e4"):
            assert "self_weight=true" in evals[f"full__{col}"], (profile.name, col)
            # the keys too: the full-raw row was trained with raw ones, and a column means one attention
            assert any(a.startswith("attention.shared_qk_keys=") for a in evals[f"full-raw__{col}"]), col


def test_table2_quick_is_the_papers_task_and_model(tmp_path):
    e = next(x for x in EXPERIMENTS if x.name == "table2")
    for step in e.profile("quick").steps:
        if step.kind != "train":
            continue
        cfg = compose_run(resolved(step, tmp_path)[1:])
        assert (cfg.task.name, cfg.task.seq_len, cfg.task.vocab_size) == ("synthetic", 1024, 128)
        assert (cfg.model.n_layers, cfg.model.d_model, cfg.model.d_ff, cfg.model.n_heads) == (1, 256, 256, 4)
        if cfg.attention.name == "full":
            assert cfg.attention.shared_qk  # evaluated under LSH: only a shared-QK model defines that
        else:
            assert cfg.attention.chunk_length == 32 and cfg.attention.n_buckets is None  # 2 * 1024 / 32 = 64


@pytest.mark.parametrize("profile", ["cpu", "quick", "paper"])
def test_table2_trains_the_papers_lsh_and_one_model_across_buckets(profile, tmp_path):
    """The paper's rows use the paper's LSH (same bucket, duplicate correction); the extra row
    attends across buckets without the correction (trax v2 / HF); the cpu profile is the paper's
    model at a length of at least 256; every profile hashes into the authors' 64 buckets."""
    e = next(x for x in EXPERIMENTS if x.name == "table2")
    for step in e.profile(profile).steps:
        if step.kind != "train":
            continue
        cfg = compose_run(resolved(step, tmp_path)[1:])
        assert (cfg.model.n_layers, cfg.model.d_model, cfg.model.d_ff, cfg.model.n_heads) == (1, 256, 256, 4)
        assert cfg.task.vocab_size == 128 and cfg.task.seq_len >= 256
        if cfg.attention.name == "lsh":
            across = step.run == "lsh-2-across"
            assert (cfg.attention.attend_across_buckets, cfg.attention.dedup) == (across, not across), step.name
            assert 2 * cfg.task.seq_len // cfg.attention.chunk_length == 64  # the authors' 64 buckets


def test_smoke_is_cpu_only_and_never_reads_or_replaces_real_data(tmp_path):
    for name, profile, step in STEPS:
        args = resolved(step, tmp_path)
        if profile in ("smoke", "cpu"):
            assert not any(a.split("=", 1)[-1].startswith("cuda") for a in args), (name, step.name)
            if step.kind == "train":
                assert compose_run(args[1:]).task.name in ("synthetic", "text"), (name, step.name)
        elif step.kind == "train":
            cfg = compose_run(args[1:])
            assert not (cfg.task.name == "text"), (name, profile, step.name)  # quick/paper: the real datasets only
            if name != "table2":
                assert cfg.task.name in ("enwik8", "imagenet64"), (name, profile, step.name)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_definition_mistakes_are_one_line_errors(tmp_path):
    base = "title: t\nlayout: matrix\nprofiles:\n  smoke:\n    about: a\n    comparable: false\n"
    cases = {
        "layout: matrix\nprofiles: {}\n": "'title' is required",
        base.replace("matrix", "pie"): "layout 'pie' is not one of",
        base + "    trains: {}\n": "unknown key(s) trains",
        base.replace("smoke:", "fast:"): "profile 'fast' is not one of",
        base + "    train:\n      runs:\n        a b: []\n": "'a b' is not a usable name",
        base + "    train:\n      runs:\n        a: []\n    eval:\n      of: [b]\n      runs:\n        x: []\n": "eval.of names b",
        base + "    train:\n      runs:\n        a: oops\n": "must be a list of command-line arguments",
        "title: [unclosed\n": "cannot read the definition",
        base + "    prepare: [[task=enwik8]]\n": "prepare is only for a text corpus committed under",
        base.replace("matrix", "curves") + "beyond_paper: {rows: [x]}\n": "beyond_paper is for the matrix layout only",
        base + "beyond_paper: {rowz: [x]}\n": "beyond_paper: unknown key(s) rowz",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = write(tmp_path / f"e{i}.yaml", text)
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            load_experiment(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError, match="unknown experiment.*nosuch"):
        load_experiments(only=["table2", "nosuch"])


def test_steps_expand_in_run_order_with_names_and_labels(tmp_path):
    path = write(tmp_path / "x.yaml", """
title: x
layout: curves
profiles:
  smoke:
    about: a
    comparable: false
    env: {OMP_NUM_THREADS: 1}
    prepare: [[task=text, task.path=<experiments>/c.txt]]
    tasks: {t1: [task.seq_len=8], t2: [task.seq_len=16]}
    train:
      common: [model=tiny]
      runs: {a: [seed=1], b: [seed=2]}
    eval:
      of: [b]
      common: [split=test]
      runs: {e: [max_batches=1]}
    bench: {m: [memory, --depths, "1"]}
""")
    steps = load_experiment(path).profile("smoke").steps
    assert [(s.kind, s.name) for s in steps] == [
        ("prepare", "prepare-1"), ("train", "t1.a"), ("train", "t1.b"), ("eval", "t1.b__e"),
        ("train", "t2.a"), ("train", "t2.b"), ("eval", "t2.b__e"), ("bench", "m"),
    ]
    assert steps[3].args == ["eval", "split=test", "max_batches=1"] and steps[3].evaluates == "t1.b"
    assert steps[4].args == ["run", "task.seq_len=16", "model=tiny", "seed=1"]
    assert steps[3].labels == {"run": "b", "task_key": "t1", "evaluates": "t1.b", "as_": "e"}
    assert all(s.env == {"OMP_NUM_THREADS": "1"} for s in steps)
    assert resolve("<root>/d/<dir>", experiments=Path("e"), root=Path("r"), step_dir=Path("s")) == "r/d/s"


def test_the_table2_preset_is_the_quick_recipe(tmp_path):
    """`reformer run experiment=table2 <attention>` trains exactly what the quick profile trains."""
    e = next(x for x in EXPERIMENTS if x.name == "table2")
    for step in e.profile("quick").steps:
        if step.kind != "train":
            continue
        args = resolved(step, tmp_path)[1:]
        attention = [a for a in args if a.startswith("attention")]
        runner_only = [a for a in args if a.startswith(("trainer.device=", "logger="))]
        preset = compose_run(["experiment=table2", *runner_only, *attention])
        assert OmegaConf.to_container(preset, resolve=True) == OmegaConf.to_container(compose_run(args), resolve=True)


def test_every_training_run_names_its_attention():
    """LSH is the default attention: a run that means the baseline must say `attention=full`, so no
    definition depends on the default (checked when the default changed: every train step composed
    exactly as before)."""
    for name, profile, step in STEPS:
        if step.kind == "train":
            assert any(a.startswith("attention=") for a in step.args), (name, profile, step.name)


SEEDED = """
title: x
layout: curves
paper:
  panels:
    - title: p
      runs: [a, b]
      baseline: a
      checks:
        - {claim: "b is not worse than a", run: b, baseline: a, expect: not_worse, tolerance: 0.02}
profiles:
  smoke:
    about: a
    comparable: false
    seeds: [0, 3]
    tasks: {t1: [task.seq_len=8]}
    train:
      common: [model=tiny]
      runs: {a: [attention=full], b: [attention=lsh]}
    eval:
      of: [b]
      runs: {e: [max_batches=1]}
"""


def test_seeds_expand_every_train_run_once_per_seed(tmp_path):
    steps = load_experiment(write(tmp_path / "x.yaml", SEEDED)).profile("smoke").steps
    assert [(s.kind, s.name) for s in steps] == [
        ("train", "t1.a@s0"), ("train", "t1.a@s3"), ("train", "t1.b@s0"), ("eval", "t1.b@s0__e"),
        ("train", "t1.b@s3"), ("eval", "t1.b@s3__e"),
    ]
    assert steps[4].args == ["run", "task.seq_len=8", "model=tiny", "attention=lsh", "seed=3"]
    assert steps[4].labels == {"run": "b", "task_key": "t1", "seed": 3}
    assert steps[5].evaluates == "t1.b@s3" and steps[5].labels["seed"] == 3
    # without seeds: the same names, arguments and labels as before (committed records stay valid)
    plain = load_experiment(write(tmp_path / "y.yaml", SEEDED.replace("    seeds: [0, 3]\n", ""))).profile("smoke").steps
    assert [s.name for s in plain] == ["t1.a", "t1.b", "t1.b__e"]
    assert plain[0].args == ["run", "task.seq_len=8", "model=tiny", "attention=full"]
    assert plain[1].labels == {"run": "b", "task_key": "t1"}


def test_seed_is_the_run_configs_top_level_seed():
    assert compose_run(["seed=7"]).seed == 7


def test_seeds_and_checks_mistakes_are_one_line_errors(tmp_path):
    check = '{claim: "b is not worse than a", run: b, baseline: a, expect: not_worse, tolerance: 0.02}'
    cases = {
        SEEDED.replace("[0, 3]", "[0, 0]"): "seeds must be a non-empty list of distinct non-negative integers",
        SEEDED.replace("[0, 3]", "[]"): "seeds must be a non-empty list",
        SEEDED.replace("[0, 3]", "[-1]"): "seeds must be a non-empty list",
        SEEDED.replace("layout: curves", "layout: matrix"): "seeds is for the curves layout only",
        SEEDED.replace("[attention=lsh]", "[attention=lsh, seed=4]"): "train run(s) b set seed= themselves",
        SEEDED.replace("{a: [attention", "{a@x: [attention"): "'a@x' is not a usable name",
        SEEDED.replace(check, check.replace("tolerance:", "tolerence:")): "checks[0]: unknown key(s) tolerence",
        SEEDED.replace(check, check.replace("run: b", "run: c")): "checks[0].run: 'c' is not a run of the panel",
        SEEDED.replace(check, check.replace("baseline: a", "baseline: b")): "run and baseline are both 'b'",
        SEEDED.replace(check, check.replace("not_worse", "similar")): "checks[0].expect: 'similar' is not one of",
        SEEDED.replace(check, check.replace("0.02", "-1")): "checks[0].tolerance must be a number >= 0",
        SEEDED.replace(check, check.replace('claim: "b is not worse than a", ', "")): "checks[0]: claim required",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = write(tmp_path / f"e{i}.yaml", text)
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            load_experiment(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
