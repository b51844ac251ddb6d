"""reformer: reproduce 'Reformer: The Efficient Transformer' (ICLR 2020) in PyTorch."""

__version__ = "0.1.0"
