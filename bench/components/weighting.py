"""Per-class loss weights computed from training class counts.

Every scheme is normalised so that the weights sum to the number of classes (Cui et al. 2019),
which keeps the loss scale comparable to unweighted training.
"""

from __future__ import annotations

import numpy as np


def _normalised(raw: np.ndarray) -> np.ndarray:
    return raw * (len(raw) / raw.sum())


def inverse_frequency(counts: np.ndarray) -> np.ndarray:
    """w_j ∝ 1 / n_j."""
    return _normalised(1.0 / counts.astype(float))


def sqrt_inverse_frequency(counts: np.ndarray) -> np.ndarray:
    """w_j ∝ 1 / √n_j (Mahajan et al. 2018; milder than inverse frequency)."""
    return _normalised(1.0 / np.sqrt(counts.astype(float)))


def effective_number(counts: np.ndarray, *, beta: float) -> np.ndarray:
    """w_j ∝ (1 − β) / (1 − β^n_j), the inverse effective number of samples (Cui et al. 2019)."""
    return _normalised((1.0 - beta) / (1.0 - np.power(beta, counts.astype(float))))
