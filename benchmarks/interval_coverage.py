"""How often a 95 % interval over a few splits covers the true mean difference.

    python benchmarks/interval_coverage.py --splits 5 --trials 2000

Draws `--trials` sets of k split differences from a normal distribution of mean 0 and, for
each, three intervals of their mean: the percentile interval of resampled means (a bootstrap
over the splits, as `bench compare` drew it for shared test sets before), Student's t over the
splits, and Student's t on the bootstrap's standard error scaled by sqrt(k / (k - 1)) (what
`bench.compare.intervals` draws for shared test sets now). Prints the share of trials whose
interval holds 0. The splits' variance only: the test images' variance, which the real
bootstrap adds, is left out, since it only widens both bootstrap intervals alike.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def coverage(splits: int, trials: int, resamples: int, seed: int) -> dict[str, float]:
    """The share of trials whose 95 % interval holds the true mean, by interval."""
    rng = np.random.default_rng(seed)
    t = stats.t.ppf(0.975, splits - 1)
    held = {"percentile bootstrap": 0, "t over splits": 0, "t on bootstrap SE": 0}
    for _ in range(trials):
        differences = rng.normal(0.0, 1.0, splits)
        chosen = rng.integers(0, splits, size=(resamples, splits))
        means = differences[chosen].mean(axis=1)
        low, high = np.quantile(means, [0.025, 0.975])
        held["percentile bootstrap"] += low <= 0 <= high
        mean = differences.mean()
        held["t over splits"] += abs(mean) <= t * stats.sem(differences)
        error = means.std(ddof=1) * np.sqrt(splits / (splits - 1))
        held["t on bootstrap SE"] += abs(mean) <= t * error
    return {name: count / trials for name, count in held.items()}


def main() -> None:
    """Print the coverage of each interval."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    found = coverage(args.splits, args.trials, args.resamples, args.seed)
    for name, share in found.items():
        print(f"{name}: {share:.3f} of {args.trials} trials hold the mean ({args.splits} splits)")


if __name__ == "__main__":
    main()
