"""One module per `reformer <command>`, each exposing `main(args) -> int | None`."""


def matplotlib_or_note(skipped: str) -> bool:
    """Whether matplotlib imports (imported only when plots are asked for); if not, one note on
    stderr that `skipped` is left out, and False."""
    import sys

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.stderr.write(f"note: {skipped} skipped: matplotlib is not installed (pip install matplotlib)\n")
        return False
    return True
