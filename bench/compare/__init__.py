"""`bench compare`: one comparison over several datasets (ranks, Friedman and Nemenyi, the
Bayesian signed-rank test of each metric-learning stage 1 against cross-entropy, a verdict)."""
