"""The layers point down and nothing is written twice.

Layer rules, checked twice: in fresh interpreters (what importing a module really loads, read off
`sys.modules`) and on the import statements themselves (function-level imports included, which
`sys.modules` only sees when they run):

* `reformer_cli.attention` and `reformer_cli.tasks` import nothing from `reformer_cli.model`;
* nothing outside `reformer_cli.commands` and `reformer_cli.cli` imports `reformer_cli.commands`;
* `reformer_cli.config` imports nothing from `model` or `tasks` (nor torch), and from `attention`
  only the attention specs (`ATTENTION_SPECS`: what each type is, without torch);
* `reformer_cli.definitions` (experiment definitions, curated records) imports nothing from
  `reproduce` or `table`, and `table` nothing from `reproduce`: both read the layer below;
* no import cycle anywhere.

And the blocks that used to be repeated have one home each: config composition (hydra_entry),
the optimizer (optimization.py), the OOM check (bench/common.py), `bucket_factors`
(primitives/attention_settings.py), the run label (naming.attention_label), the rule of a stale
evaluation record (definitions/curated.py). The LSH keywords
have theirs in tests/primitives/test_attention_settings.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
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


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


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


def importable(names: list[str]) -> list[str]:
    """Leave out the fast kernels where triton is missing (the model falls back without them) and
    the entry point that runs the command line."""
    try:
        import triton  # noqa: F401
    except ImportError:
        names = [n for n in names if not under(n, "reformer_cli.attention.fast")]
    return [n for n in names if n != "reformer_cli.__main__"]


def test_attention_and_tasks_load_nothing_from_the_model():
    for package in ("reformer_cli.attention", "reformer_cli.tasks"):
        loaded = loaded_after_importing(importable([n for n in MODULES if under(n, package)]))
        assert not {m for m in loaded if under(m, "reformer_cli.model")}, package


def test_only_the_command_line_loads_the_commands():
    outside = [n for n in MODULES if not under(n, "reformer_cli.commands", "reformer_cli.cli")]
    loaded = loaded_after_importing(importable(outside))
    assert not {m for m in loaded if under(m, "reformer_cli.commands")}


# the attention modules the config may load: the specs, their registry and the choice per layer
ATTENTION_SPECS = ("reformer_cli.attention.registry", "reformer_cli.attention.spec",
                   "reformer_cli.attention.per_layer", "reformer_cli.attention.specs")


def test_the_config_loads_no_model_task_attention_core_or_torch():
    loaded = loaded_after_importing(["reformer_cli.config"])
    assert not {m for m in loaded if under(m, "reformer_cli.model", "reformer_cli.tasks")}
    attention = {m for m in loaded if under(m, "reformer_cli.attention")} - {"reformer_cli.attention"}
    assert attention and all(under(m, *ATTENTION_SPECS) for m in attention), attention
    assert "torch" not in loaded  # config errors come back before torch is imported


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


def test_the_layer_rules_hold_for_every_import_statement():
    for name, imported in GRAPH.items():
        if under(name, "reformer_cli.attention", "reformer_cli.tasks"):
            assert not {m for m in imported if under(m, "reformer_cli.model")}, name
        if not under(name, "reformer_cli.commands", "reformer_cli.cli"):
            assert not {m for m in imported if under(m, "reformer_cli.commands")}, name
        if under(name, "reformer_cli.definitions"):
            assert not {m for m in imported if under(m, "reformer_cli.reproduce", "reformer_cli.table")}, name
        if under(name, "reformer_cli.table"):
            assert not {m for m in imported if under(m, "reformer_cli.reproduce")}, name
    config = GRAPH["reformer_cli.config"]
    assert not {m for m in config if under(m, "reformer_cli.model", "reformer_cli.tasks")}
    assert all(under(m, *ATTENTION_SPECS) for m in config if under(m, "reformer_cli.attention"))
    for spec_module in (n for n in GRAPH if under(n, *ATTENTION_SPECS)):  # and what they import at the top
        assert "torch" not in top_level_imports(MODULES[spec_module]), spec_module


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
