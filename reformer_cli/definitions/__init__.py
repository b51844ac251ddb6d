"""What `reformer reproduce` and `reformer table` both read: the experiment definitions
(experiments.py: experiments/*.yaml expanded into steps) and the curated run records
(curated.py: where they live, reading them, and when one is stale). A layer below reproduce/ and
table/; nothing here imports torch or Hydra, and nothing is imported here."""
