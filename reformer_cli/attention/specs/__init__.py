"""One module per attention type, each defining `SPEC` (attention/spec.py); the registry loads
every module here. Torch-free: a spec imports its core only when building it."""
