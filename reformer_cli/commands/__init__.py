"""One module per `reformer <command>`, each exposing `main(args) -> int | None`."""
