"""SkinGenBench: a benchmark suite for synthetic data in dermoscopy classification."""

__version__ = "0.1.0"
