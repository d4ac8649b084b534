"""Stage 2: re-balancing the classifier on a stage 1's cached features (cRT, LWS, tau-norm,
NCM, post-hoc logit adjustment, DisAlign, weight balancing, MiSLAS)."""
