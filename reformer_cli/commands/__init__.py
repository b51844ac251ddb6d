"""One module per `reformer <command>`, each exposing `main(args) -> int | None`. A command imports
its work (the library modules it calls) inside its functions, when it runs: `reformer --help`, and
a config error, load none of it, so no torch."""

import sys


def matplotlib_or_note(skipped: str) -> bool:
    """Whether matplotlib imports (imported only when plots are asked for); if not, one note on
    stderr that `skipped` is left out, and False."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.stderr.write(f"note: {skipped} skipped: matplotlib is not installed (pip install matplotlib)\n")
        return False
    return True
