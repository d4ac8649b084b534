"""medlt-bench: a benchmark harness for class-imbalanced medical image classification."""

__version__ = "0.1.0"
