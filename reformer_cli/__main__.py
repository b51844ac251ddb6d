"""`python -m reformer_cli` is the same entry point as the `reformer` console script."""

from .cli import main

raise SystemExit(main())
