"""A user's YAML file checked before OmegaConf or Hydra loads it: invalid YAML is one line, and
aliases whose expansion is too large (an "alias bomb": 8 levels of `&a [*b, *b, ...]` expand to
billions of nodes, which OmegaConf would build, or hang on) are refused before anything expands.

PyYAML's composer builds the node graph with each alias pointing at its anchor's node, so the
expanded size is counted over the graph (each node once) without expanding it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError, one_line

MAX_NODES = 100_000  # the most nodes a config file may expand to (the shipped ones: a few hundred)


class UnsafeYaml(UserError):
    """A YAML file that is not valid YAML or expands to more than MAX_NODES nodes."""


def expanded_size(node, limit: int = MAX_NODES) -> int:
    """The number of nodes `node` expands to with every alias copied out; stops above `limit`
    (returns limit + 1). A node reached again through an alias counts in full each time."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(n) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_:  # an alias to a node that contains it: an infinite expansion
            return limit + 1
        open_.add(key)
        total = 1
        value = n.value
        if isinstance(value, list):
            for item in value:
                for child in item if isinstance(item, tuple) else (item,):
                    total += size(child)
                    if total > limit:
                        break
                if total > limit:
                    break
        open_.discard(key)
        sizes[key] = min(total, limit + 1)
        return sizes[key]

    return size(node)


def check_yaml_text(text: str, name: str, limit: int = MAX_NODES) -> None:
    """UnsafeYaml (one line, naming `name`) if `text` is not YAML or expands past `limit` nodes."""
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise UnsafeYaml(f"{name} is not valid YAML: {one_line(exc.problem or exc.context or 'parse error')}{where}") from None
    except yaml.YAMLError as exc:
        raise UnsafeYaml(f"{name} is not valid YAML: {one_line(str(exc))}") from None
    except RecursionError:
        raise UnsafeYaml(f"{name} is nested too deeply to be a config") from None
    total = 0
    for document in documents:
        try:
            total += expanded_size(document, limit)
        except RecursionError:
            raise UnsafeYaml(f"{name} is nested too deeply to be a config") from None
        if total > limit:
            raise UnsafeYaml(
                f"{name} expands to more than {limit:,} nodes through YAML aliases (&anchor / *alias);"
                " refusing to load it"
            )


def check_yaml_file(path: str | Path, limit: int = MAX_NODES) -> None:
    """`check_yaml_text` on the file at `path` (UnsafeYaml also when it cannot be read as text)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnsafeYaml(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    check_yaml_text(text, str(path), limit)
