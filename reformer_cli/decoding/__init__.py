"""Using a trained model: cached decoding (one query per new token against per-layer caches of
keys, values and LSH buckets) and sampling (docs/sampling.md)."""
