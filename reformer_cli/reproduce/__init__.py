"""`reformer reproduce`: the paper's experiments (`experiments/*.yaml`, read by
reformer_cli/definitions/) run resumably, one step per process, and curated into `results/runs/`."""
