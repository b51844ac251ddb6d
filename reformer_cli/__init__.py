"""reformer: reproduce 'Reformer: The Efficient Transformer' (ICLR 2020) in PyTorch."""

import importlib
from pathlib import Path

__version__ = "0.1.0"


def shipped(name: str) -> Path:
    """A folder of the repository's top level that ships with the package (`conf`, `experiments`):
    inside the installed package for a wheel or `pip install .` (pyproject.toml maps them there),
    else beside the package, in a clone or an editable install."""
    package = Path(__file__).resolve().parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name


def __getattr__(name: str):
    """`reformer_cli.load(run_folder_or_checkpoint)` (loading.py): imported on first use, so that
    `import reformer_cli` (the command line's entry) stays free of torch."""
    if name == "load":
        return importlib.import_module(f"{__name__}.loading").load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
