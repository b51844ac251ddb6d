"""ReformerLM and its parts: blocks, reversible layers, chunked feed-forward, positions."""
