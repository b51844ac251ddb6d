"""The layers point down and nothing is written twice.

`LAYERS` lists the package's layers from the bottom up (the same table as docs/development.md). A
module may import its own layer and the layers below it, nothing above: checked on every import
statement of every module, the imports inside functions included, read with `ast`. The few
upward imports that are right stand in `ALLOWED_UPWARD`, each with its reason. No import cycle
anywhere, and the config stays free of torch (its errors come before torch is imported).

And the blocks that used to be repeated have one home each: config composition (hydra_entry),
the optimizer (optimization.py), the OOM check (bench/common.py), `bucket_factors`
(primitives/attention_settings.py), the run label (naming.attention_label), the rule of a stale
evaluation record (definitions/curated.py), a path as shown and a markdown table (text.py), the
`-m` test (sweeps.is_multirun). The LSH keywords
have theirs in tests/primitives/test_attention_settings.py.

And the names of the attention types are spoken only by attention/ (everything else asks the
registry: the baseline, whether a type hashes, its settings in words), the names of the tasks only
by tasks/ and data/; a foreign format's vocabulary that happens to be spelled alike stands in
`FOREIGN_NAMES`, each with its reason.
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from .conftest import REPO, cli_env, compose

PACKAGE = REPO / "reformer_cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

# The layers, bottom first: (name, the modules and packages in it, relative to reformer_cli; "" is
# the package itself: __version__, shipped()). A module belongs to its longest match.
LAYERS = [
    ("primitives", ["", "errors", "text", "primitives"]),
    ("attention", ["attention"]),
    ("config schemas", ["config"]),
    ("model", ["model"]),
    ("data on disk", ["data"]),
    ("tasks", ["tasks"]),
    ("run support", ["records", "run_folder", "resume", "run_records", "naming", "loggers", "file_loggers",
                     "sweeps", "objective", "memory_estimate", "progress", "runtime", "distributed", "finite",
                     "yaml_guard"]),
    ("training", ["optimization", "checkpointer", "best", "eval_plan", "evaluation", "train", "loading"]),
    ("using a model", ["decoding", "bench"]),
    ("Hydra", ["hydra_entry", "eval_arguments", "prepared_run"]),
    ("import", ["hf_import"]),
    ("definitions", ["definitions"]),
    ("pages", ["table", "comparison"]),
    ("experiments", ["reproduce"]),
    ("commands", ["commands"]),
    ("command line", ["cli", "__main__"]),
]

# (importer, imported) -> why this import may point up. `reformer_cli.load` (loading.py) is imported
# by name through importlib in reformer_cli/__init__.py, which no import statement shows.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def layer_of(name: str) -> int:
    """The index in LAYERS of module `name` (its longest match)."""
    matches = [(len(member), index) for index, (_, members) in enumerate(LAYERS) for member in members
               if name == ".".join(filter(None, ["reformer_cli", member]))
               or (member and name.startswith(f"reformer_cli.{member}."))]
    assert matches, f"{name} is in no layer: add it to LAYERS (and to docs/development.md)"
    return max(matches)[1]


def loaded_after_importing(modules: list[str]) -> set[str]:
    """The reformer_cli modules (and torch, if so) a fresh interpreter holds after importing `modules`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('reformer_cli') or m == 'torch')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_config_loads_no_torch():
    """Config errors come back before torch is imported."""
    assert "torch" not in loaded_after_importing(["reformer_cli.config"])


# ------------------------------------------------------------------------------ import statements


def imports_of(name: str, path: Path) -> set[str]:
    """Every reformer_cli module `name` imports, anywhere in the file (relative imports resolved;
    `from package import module` counts as importing that module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES}


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def top_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports outside functions."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").split(".")[0])
    return found


def test_no_import_cycle():
    """Tarjan's strongly connected components of the import graph: every one a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in GRAPH[v]:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles


def test_every_module_has_one_layer():
    for name in MODULES:
        layer_of(name)
    members = [member for _, group in LAYERS for member in group]
    assert len(members) == len(set(members))
    assert all(".".join(filter(None, ["reformer_cli", member])) in MODULES for member in members)


def test_the_development_page_lists_the_same_layers():
    """docs/development.md's table names the layers top first in its first column."""
    text = (REPO / "docs" / "development.md").read_text()
    table = text.split("```")[1].split("\nconf/")[0]
    named = [line[:15].strip() for line in table.splitlines() if line[:15].strip()]
    assert named == [name for name, _ in reversed(LAYERS)]


def test_every_import_points_down():
    """Every import statement, at the top or inside a function, imports from the module's own
    layer or one below it (or stands in ALLOWED_UPWARD)."""
    upward = {(name, imported) for name, imports in GRAPH.items() for imported in imports
              if layer_of(imported) > layer_of(name)}
    shown = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {imported} ({LAYERS[layer_of(imported)][0]})"
             for name, imported in sorted(upward - set(ALLOWED_UPWARD))]
    assert not shown, "\n".join(shown)
    assert set(ALLOWED_UPWARD) <= upward  # an exception that is gone leaves the list


def test_the_config_spec_modules_import_no_torch_at_the_top():
    for name in GRAPH["reformer_cli.config"]:
        assert "torch" not in top_level_imports(MODULES[name]), name


# ------------------------------------------------------------------------------ written once


def definitions() -> dict[str, list[str]]:
    """function name -> the modules defining it (methods included)."""
    found: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(node.name, []).append(name)
    return found


def calls_under(prefix: str) -> dict[str, list[str]]:
    """Calls of `prefix.<name>(...)` (e.g. torch.optim.AdamW) -> the modules making them."""
    found: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                text = ast.unparse(node.func)
                if text.startswith(prefix + "."):
                    found.setdefault(text, []).append(name)
    return found


@pytest.mark.parametrize("function, home", [
    ("bucket_factors", "reformer_cli.primitives.attention_settings"),
    ("build_optimizer", "reformer_cli.optimization"),
    ("train_step", "reformer_cli.optimization"),
    ("is_oom", "reformer_cli.bench.common"),
    ("compose", "reformer_cli.hydra_entry"),
    ("attention_label", "reformer_cli.naming"),
    ("derive_seed", "reformer_cli.primitives.context"),
    ("evaluated_before_training", "reformer_cli.definitions.curated"),
    ("shown_path", "reformer_cli.text"),
    ("markdown_table", "reformer_cli.text"),
    ("is_multirun", "reformer_cli.sweeps"),
])
def test_one_definition(function, home):
    assert definitions()[function] == [home]
    assert "_is_oom" not in definitions()


def test_one_place_composes_configs_and_builds_optimizers():
    hydra_api = {n for n, imported in
                 ((n, {a.name for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.ImportFrom)
                       and node.module == "hydra" for a in node.names}) for n, p in MODULES.items())
                 if imported & {"compose", "initialize_config_dir", "initialize"}}
    assert hydra_api == {"reformer_cli.hydra_entry"}
    optimizers = {call: modules for call, modules in calls_under("torch.optim").items()}
    assert optimizers and set(sum(optimizers.values(), [])) == {"reformer_cli.optimization"}, optimizers


def test_runs_and_evaluations_are_labelled_alike():
    from reformer_cli.evaluation import attention_label
    from reformer_cli.train import default_run_name

    cfg = compose(["attention=lsh", "attention.n_rounds=4"])
    assert attention_label(cfg.attention) == "lsh-4"
    assert default_run_name(cfg) == "synthetic-lsh-4-standard-seed0"
    cfg = compose(["attention=full", "attention.shared_qk=true", "attention.self_mask=false", "layer=reversible", "seed=3"])
    assert default_run_name(cfg) == f"synthetic-{attention_label(cfg.attention)}-reversible-seed3"
    assert attention_label(cfg.attention) == "full-sharedqk-noself"


# ------------------------------------------------------------------------------ names said once


def quoted_names(path: Path, names: tuple[str, ...]) -> set[str]:
    """The `names` that a string of the file (a literal, an f-string, a docstring, a help text; not
    a comment) holds in quotes: `"lsh"`, `'full'`, and `f"{x == 'lsh'}"` alike."""
    pattern = re.compile(r"[\"']({})[\"']".format("|".join(map(re.escape, names))))
    strings = [token.string for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
               if token.type == tokenize.STRING]
    return {match.group(1) for text in strings for match in pattern.finditer(text)}


ATTENTION_NAMES = ("lsh", "full", "local")
TASK_NAMES = ("synthetic", "enwik8", "text", "imagenet64")

# (file, name) -> why that file may hold the name in quotes: another vocabulary spelled alike.
FOREIGN_NAMES: dict[tuple[str, str], str] = {
    ("reformer_cli/bench/speed.py", "lsh"): "transformers' ReformerConfig.attn_layers value (the peer row)",
    ("reformer_cli/hf_import/hf_config.py", "lsh"): "transformers' config.json attn_layers vocabulary",
    ("reformer_cli/hf_import/hf_config.py", "local"): "transformers' config.json attn_layers vocabulary",
    ("reformer_cli/tasks/spec.py", "full"): "task.data_verify=full: re-hash every prepared file",
    ("reformer_cli/data/manifest.py", "full"): "task.data_verify=full: re-hash every prepared file",
    ("reformer_cli/data/bytes.py", "full"): "task.data_verify=full: re-hash the source file",
    ("reformer_cli/decoding/by_task.py", "text"): "the text sample kind and sample.json's key, not the task",
}


def names_outside(names: tuple[str, ...], homes: tuple[str, ...]) -> set[tuple[str, str]]:
    """(file, name) for each of `names` a module outside the `homes` packages holds in quotes."""
    inside = lambda module: any(f"{module}.".startswith(f"reformer_cli.{home}.") for home in homes)  # noqa: E731
    return {(str(path.relative_to(REPO)), name) for module, path in MODULES.items() if not inside(module)
            for name in quoted_names(path, names)}


def test_only_attention_names_the_attention_types_and_only_tasks_and_data_the_tasks():
    found = (names_outside(ATTENTION_NAMES, ("attention",)) | names_outside(TASK_NAMES, ("tasks", "data")))
    shown = [f"{file} names {name!r}: ask the registry (attention/registry.py, primitives/task_registry.py),"
             " or add it to FOREIGN_NAMES with its reason" for file, name in sorted(found - set(FOREIGN_NAMES))]
    assert not shown, "\n".join(shown)
    assert set(FOREIGN_NAMES) <= found  # an exception that is gone leaves the list


def test_the_name_scan_sees_literals_f_strings_and_docstrings_but_not_comments(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text('''"""Use "lsh" here."""\nx = f"{y == 'full'}"  # "local"\nz = "lsh-4", "fully"\n''')
    assert quoted_names(path, ATTENTION_NAMES) == {"lsh", "full"}
