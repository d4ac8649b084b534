"""One method evaluated in one experiment (dataset, split, settings): the path `bench run`
and `bench sweep` share, and the training settings it resolves."""
