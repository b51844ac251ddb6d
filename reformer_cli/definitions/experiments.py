"""The paper's results as experiment definitions (`experiments/*.yaml`), expanded into steps.

One YAML file per paper result. Each holds what the paper reports (`paper:`, read by the table
builder named in `layout:`) and, per profile (`smoke`, `cpu`, `quick`, `paper`), the commands that
reproduce it:

    title: Table 2 ...
    layout: matrix                  # which builder renders it (reformer_cli/table/)
    paper: {...}                    # the paper's numbers, exactly as docs/paper-numbers.md gives them
                                    # curves: paper.panels[i].checks, claims decided from the records:
                                    # [{claim, run, baseline, expect: not_worse | better, tolerance}]
    profiles:
      smoke:
        about: one line: what this profile trains, on what data
        comparable: false           # false: every table built from it says "not comparable"
        seeds: [0, 1]               # optional: every train run once per seed (see below)
        label: what a page built from it says first (optional; default for comparable: false:
               "<profile> profile: not comparable to the paper")
        estimate: about 2 minutes on 2 CPU cores
        recipe: why these settings (optional, shown under the table)
        env: {OMP_NUM_THREADS: "1"}  # environment of every step's process (optional)
        prepare: [[task=text, task.path=<experiments>/data/smoke_corpus.txt, ...]]  # or task.sha256=...
        tasks: {enwik8: [task=enwik8, ...]}        # optional: every run once per task
        train:
          common: [overrides for every run]
          runs: {full: [attention=full, attention.shared_qk=true], lsh-4: [...]}
        eval:                       # every trained run (or those in `of`) under each setting
          common: [split=test]
          of: [full]                # optional
          runs: {full: [attention=full], lsh-8: [attention=lsh, attention.n_rounds=8]}
        bench: {memory: [memory, --depths, "2,4"]}

Steps and their names (each name is also its record's file name):
    prepare   `reformer data prepare <overrides>` (a local text file, committed or named by its sha256;
              never a download)
    train     `reformer run <task overrides> <common> <run>`          name `<run>` or `<task>.<run>`
              with `seeds`: once per seed, `seed=<s>` appended,    name `<run>@s<s>` or `<task>.<run>@s<s>`
    eval      `reformer eval checkpoint=<train folder> <common> <as>` name `<train step>__<as>`
    bench     `reformer bench <args>` (the runner adds `--json`)      name `<bench>`

Placeholders in any argument: `<experiments>` (this folder), `<root>` (the profile's output
folder, e.g. outputs/reproduce/smoke), `<dir>` (the step's own folder).

Nothing here imports torch or Hydra: `reformer table` reads the same definitions in CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import shipped
from ..errors import ConfigError

EXPERIMENTS_DIR = shipped("experiments")  # inside the installed package, or the repository's top level
# smoke: the pipeline on a CPU in minutes; cpu: a scaled-down result a 2-core machine finishes in
# hours (each result's `estimate` says how many, measured); quick: one GPU, minutes to half an
# hour; paper: the paper's sizes and steps.
PROFILES = ("smoke", "cpu", "quick", "paper")
# the page layouts, each the name of its builder's module in reformer_cli/table/ (the one list of them)
LAYOUTS = ("matrix", "curves", "speed", "memory")
PLACEHOLDERS = ("experiments", "root", "dir")
# The paper's order (runs and pages follow it; other definitions come after, by name). Table 2
# first: it is the result a short GPU session must finish.
ORDER = ("table2", "fig3", "fig4", "fig5_depth", "fig5_speed", "memory_claims")

_EXPERIMENT_KEYS = {"title", "layout", "paper", "beyond_paper", "profiles"}
_BEYOND_KEYS = {"title", "rows", "columns", "labels", "note", "checks"}
# a hypothesis the page tests: every cell of `rows` in `column` within `tolerance` of `expect`
_CHECK_KEYS = {"claim", "column", "rows", "expect", "tolerance"}
# curves layout: a claim of a panel decided from the records (reformer_cli/table/verdicts.py)
_PANEL_CHECK_KEYS = {"claim", "run", "baseline", "expect", "tolerance"}
EXPECTATIONS = ("not_worse", "better")
_PROFILE_KEYS = {"about", "comparable", "label", "estimate", "recipe", "env", "seeds", "prepare", "tasks", "train",
                 "eval", "bench"}
_TRAIN_KEYS = {"common", "runs"}
_EVAL_KEYS = {"common", "of", "runs"}


@dataclass
class Step:
    """One command of a profile. `args` follow the command word(s) of `reformer`, placeholders
    unresolved; the runner adds the folder, resume and output arguments."""

    experiment: str
    profile: str
    name: str
    kind: str  # prepare | train | eval | bench
    args: list[str]
    run: str | None = None  # train / eval: the run's name in `train.runs`
    task: str | None = None  # the key in `tasks`, if the profile has several
    evaluates: str | None = None  # eval: the name of the train step it evaluates
    as_: str | None = None  # eval: the name of the setting in `eval.runs`
    env: dict[str, str] = field(default_factory=dict)  # the profile's `env`
    seed: int | None = None  # train / eval: the seed of the profile's `seeds` it trains with (None: no `seeds`)

    @property
    def labels(self) -> dict[str, Any]:
        """What the table builders key on, copied into the curated record (`seed` only with `seeds`,
        so the records of a profile without seeds stay as they were)."""
        out = {"run": self.run, "task_key": self.task, "seed": self.seed}
        if self.kind == "eval":
            out.update(evaluates=self.evaluates, as_=self.as_)
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Profile:
    name: str
    about: str
    comparable: bool
    estimate: str
    recipe: str
    env: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    label: str = ""  # what a page built from this profile says first (empty: the default banner)


@dataclass
class Experiment:
    name: str
    title: str
    layout: str
    paper: dict
    profiles: dict[str, Profile]
    path: Path
    # matrix layout: runs the paper does not have (extra training rows, extra evaluation columns),
    # shown in their own section, never compared with a paper number
    beyond_paper: dict = field(default_factory=dict)

    def profile(self, name: str) -> Profile | None:
        return self.profiles.get(name)


# ------------------------------------------------------------------------------------ loading


def _fail(path: Path, message: str) -> None:
    raise ConfigError(f"{path}: {message}")


def _strings(path: Path, where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        _fail(path, f"{where} must be a list of command-line arguments")
    return [str(v) for v in value]


def _mapping(path: Path, where: str, value: Any, allowed: set[str] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, f"{where} must be a mapping")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            _fail(path, f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return value


def _named_lists(path: Path, where: str, value: Any) -> dict[str, list[str]]:
    out = {}
    for name, args in _mapping(path, where, value).items():
        name = str(name)
        if not name or any(c in name for c in "/\\ @") or "__" in name or name.startswith("."):
            _fail(path, f"{where}: '{name}' is not a usable name (no spaces, slashes, '@', '__' or leading dot)")
        out[name] = _strings(path, f"{where}.{name}", args)
    return out


def _seeds(path: Path, where: str, value: Any) -> list[int | None]:
    """A profile's `seeds`: distinct non-negative integers; [None] (one unseeded run) without the key."""
    if value is None:
        return [None]
    if not isinstance(value, list) or not value or not all(type(v) is int and v >= 0 for v in value) \
            or len(set(value)) != len(value):
        _fail(path, f"{where} must be a non-empty list of distinct non-negative integers, e.g. [0, 1]")
    return list(value)


def seeded(name: str, seed: int | None) -> str:
    """A train step's name for one seed: `regular@s1` (the name itself without seeds)."""
    return name if seed is None else f"{name}@s{seed}"


def expand_steps(experiment: str, profile: str, spec: dict, path: Path) -> list[Step]:
    """The steps of one profile, in the order they run: prepare, train, eval, bench."""
    steps: list[Step] = []
    for i, overrides in enumerate(spec.get("prepare") or []):
        args = _strings(path, f"profiles.{profile}.prepare[{i}]", overrides)
        committed = any(a.startswith("task.path=<experiments>/") for a in args)
        named = any(a.startswith("task.sha256=") for a in args)  # a local file checked by its sha256
        if "task=text" not in args or not (committed or named):
            _fail(path, f"profiles.{profile}.prepare[{i}]: prepare is only for a text corpus committed under"
                        " experiments/ (task=text task.path=<experiments>/...) or named by task.sha256; real"
                        " datasets are prepared by the user")
        steps.append(Step(experiment, profile, f"prepare-{i + 1}", "prepare", ["data", "prepare", *args]))

    tasks = _named_lists(path, f"profiles.{profile}.tasks", spec.get("tasks")) or {None: []}
    train = _mapping(path, f"profiles.{profile}.train", spec.get("train"), _TRAIN_KEYS)
    common = _strings(path, f"profiles.{profile}.train.common", train.get("common"))
    runs = _named_lists(path, f"profiles.{profile}.train.runs", train.get("runs"))
    evaluation = _mapping(path, f"profiles.{profile}.eval", spec.get("eval"), _EVAL_KEYS)
    eval_common = _strings(path, f"profiles.{profile}.eval.common", evaluation.get("common"))
    settings = _named_lists(path, f"profiles.{profile}.eval.runs", evaluation.get("runs"))
    of = [str(r) for r in evaluation.get("of") or runs]
    unknown = [r for r in of if r not in runs]
    if unknown:
        _fail(path, f"profiles.{profile}.eval.of names {', '.join(unknown)}, not in train.runs")
    seeds = _seeds(path, f"profiles.{profile}.seeds", spec.get("seeds"))
    if seeds != [None]:
        own = [r for r, a in runs.items() if any(str(x).startswith("seed=") for x in [*common, *a])]
        if own:
            _fail(path, f"profiles.{profile}: train run(s) {', '.join(own)} set seed= themselves; with seeds the"
                        " runner sets it")
    # each training run is followed by its evaluations, so an interrupted reproduction has
    # complete rows rather than trained models without numbers
    for task, task_args in tasks.items():
        for run, run_args in runs.items():
            for seed in seeds:
                name = seeded(run if task is None else f"{task}.{run}", seed)
                seed_args = [] if seed is None else [f"seed={seed}"]
                steps.append(Step(experiment, profile, name, "train", ["run", *task_args, *common, *run_args, *seed_args],
                                  run=run, task=task, seed=seed))
                if run not in of:
                    continue
                for as_, as_args in settings.items():
                    steps.append(Step(
                        experiment, profile, f"{name}__{as_}", "eval", ["eval", *eval_common, *as_args],
                        run=run, task=task, evaluates=name, as_=as_, seed=seed,
                    ))

    for name, args in _named_lists(path, f"profiles.{profile}.bench", spec.get("bench")).items():
        steps.append(Step(experiment, profile, name, "bench", ["bench", *args]))
    return steps


def _panel_checks(path: Path, paper: dict) -> None:
    """`paper.panels[i].checks` of a curves experiment: each names a claim, two of the panel's
    runs, an expectation and a tolerance (a number >= 0, default 0)."""
    for i, panel in enumerate(paper.get("panels") or []):
        checks = panel.get("checks") if isinstance(panel, dict) else None
        if checks is None:
            continue
        if not isinstance(checks, list):
            _fail(path, f"paper.panels[{i}].checks must be a list")
        runs = [str(r) for r in panel.get("runs") or []]
        for j, check in enumerate(checks):
            where = f"paper.panels[{i}].checks[{j}]"
            check = _mapping(path, where, check, _PANEL_CHECK_KEYS)
            missing = [k for k in ("claim", "run", "baseline", "expect") if not check.get(k)]
            if missing:
                _fail(path, f"{where}: {', '.join(missing)} required")
            for key in ("run", "baseline"):
                if str(check[key]) not in runs:
                    _fail(path, f"{where}.{key}: '{check[key]}' is not a run of the panel ({', '.join(runs)})")
            if check["run"] == check["baseline"]:
                _fail(path, f"{where}: run and baseline are both '{check['run']}'")
            if check["expect"] not in EXPECTATIONS:
                _fail(path, f"{where}.expect: '{check['expect']}' is not one of: {', '.join(EXPECTATIONS)}")
            tolerance = check.get("tolerance", 0)
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
                _fail(path, f"{where}.tolerance must be a number >= 0 (in the metric's unit)")


def load_experiment(path: Path) -> Experiment:
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the definition ({' '.join(str(exc).split())})") from None
    spec = _mapping(path, "the file", spec, _EXPERIMENT_KEYS)
    for key in ("title", "layout", "profiles"):
        if key not in spec:
            _fail(path, f"'{key}' is required")
    if spec["layout"] not in LAYOUTS:
        _fail(path, f"layout '{spec['layout']}' is not one of: {', '.join(LAYOUTS)}")
    if spec["layout"] == "curves":
        _panel_checks(Path(path), _mapping(path, "paper", spec.get("paper")))
    name = Path(path).stem
    profiles = {}
    for profile, pspec in _mapping(path, "profiles", spec["profiles"]).items():
        if profile not in PROFILES:
            _fail(path, f"profile '{profile}' is not one of: {', '.join(PROFILES)}")
        pspec = _mapping(path, f"profiles.{profile}", pspec, _PROFILE_KEYS)
        if "seeds" in pspec and spec["layout"] != "curves":
            _fail(path, f"profiles.{profile}.seeds is for the curves layout only (its pages group a run's seeds)")
        if not isinstance(pspec.get("about"), str):
            _fail(path, f"profiles.{profile}.about: one line saying what this profile trains is required")
        if not isinstance(pspec.get("comparable"), bool):
            _fail(path, f"profiles.{profile}.comparable must be true or false")
        env = {str(k): str(v) for k, v in _mapping(path, f"profiles.{profile}.env", pspec.get("env")).items()}
        steps = expand_steps(name, profile, pspec, Path(path))
        for step in steps:
            step.env = env
        profiles[profile] = Profile(
            name=profile,
            about=" ".join(pspec["about"].split()),
            comparable=pspec["comparable"],
            estimate=" ".join(str(pspec.get("estimate", "")).split()),
            recipe=str(pspec.get("recipe") or "").strip(),
            env=env,
            steps=steps,
            label=" ".join(str(pspec.get("label") or "").split()),
        )
    beyond = _mapping(path, "beyond_paper", spec.get("beyond_paper"), _BEYOND_KEYS)
    if beyond and spec["layout"] != "matrix":
        _fail(path, "beyond_paper is for the matrix layout only")
    for i, check in enumerate(beyond.get("checks") or []):
        check = _mapping(path, f"beyond_paper.checks[{i}]", check, _CHECK_KEYS)
        if set(check) != _CHECK_KEYS or not isinstance(check["rows"], list) \
                or not all(isinstance(check[k], (int, float)) for k in ("expect", "tolerance")):
            _fail(path, f"beyond_paper.checks[{i}] needs claim, column, rows (a list), expect and tolerance (numbers)")
    return Experiment(name, str(spec["title"]), spec["layout"], dict(spec.get("paper") or {}), profiles, Path(path),
                      dict(beyond))


def load_experiments(folder: Path | None = None, only: list[str] | None = None) -> list[Experiment]:
    """Every definition in `folder` (default: the repository's experiments/), in ORDER;
    `only` selects some (ConfigError naming the unknown ones)."""
    folder = Path(folder) if folder is not None else EXPERIMENTS_DIR
    if not folder.is_dir():
        raise ConfigError(f"experiments folder {folder} not found")
    paths = sorted(folder.glob("*.yaml"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    found = {p.stem: p for p in paths}
    if only:
        unknown = [n for n in only if n not in found]
        if unknown:
            raise ConfigError(f"unknown experiment(s) {', '.join(unknown)} (available: {', '.join(found)})")
        found = {n: found[n] for n in found if n in only}
    return [load_experiment(p) for p in found.values()]


def resolve(arg: str, *, experiments: Path, root: Path, step_dir: Path) -> str:
    """An argument with its placeholders filled in ."""
    values = {"experiments": experiments, "root": root, "dir": step_dir}
    for name in PLACEHOLDERS:
        arg = arg.replace(f"<{name}>", str(values[name]))
    return arg
