"""`reformer reproduce`: the paper's experiments (`experiments/*.yaml`) run resumably, one step per
process, and curated into `results/runs/`. Nothing is imported here, so `reformer table` can read
the definitions (experiments.py) and records (curate.py) without the runner."""
