"""Which stage-1 epoch a run keeps: the checkpoint rules, by name.

Stage 1 exists to give stage 2 features, so the rule that picks its checkpoint should not let
one lucky validation epoch of the stage-1 head decide (issue 19 measured a SupCon stage 1 kept
at epoch 7 of 18 for a spike of .50 among values near .25, which cost its cRT 20 points).

- `last` (the default): the final epoch, the decoupling literature's protocol (Kang et al.,
  ICLR 2020, train stage 1 to the end of a cosine schedule). Free: nothing is copied.
- `best`: the epoch with the best validation balanced accuracy of the stage-1 head, the
  harness's rule before issue 19; one spike decides it. Costs a copy of the weights at each
  new best.
- `smoothed`: the last epoch of the best window of `SMOOTHING_WINDOW` consecutive epochs by
  mean validation balanced accuracy; a one-epoch spike moves a window's mean by a fifth.
  Costs as `best`.
- `ncm`: the epoch whose features give the best validation balanced accuracy to a
  nearest-class-mean classifier (cosine to each class's mean train feature), a direct reading
  of the features stage 2 will use rather than of the stage-1 head. Costs one extra forward
  pass over the training split per epoch (about a third of an epoch's training work), plus
  the copies.

Each rule maps the validation record so far to the merit of the latest epoch; the epoch kept is
the first with the highest merit. Several rules can watch one training (`benchmarks/
checkpoint_rules.py` scores them all from the same trainings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SMOOTHING_WINDOW = 5  # epochs; a fifth of a spike's height reaches the window's mean

NCM_SCORE = "val_ncm_balanced_accuracy"
HEAD_SCORE = "val_balanced_accuracy"


@dataclass(frozen=True)
class CheckpointRule:
    """A named rule: `merit(scores, epochs)` is the merit of the latest epoch given the
    validation scores of every epoch so far (dicts of `HEAD_SCORE`, and `NCM_SCORE` when
    `needs_ncm`) and the number of epochs the training runs. A rule that does not read them
    (`reads_scores` false: the last epoch) lets the trainer skip validating the epochs before the
    last."""

    name: str
    merit: Callable[[Sequence[dict[str, float]], int], float]
    needs_ncm: bool = False
    copies_weights: bool = True
    reads_scores: bool = True


def _last(scores: Sequence[dict[str, float]], epochs: int) -> float:
    return float(len(scores))


def _best(scores: Sequence[dict[str, float]], epochs: int) -> float:
    return scores[-1][HEAD_SCORE]


def _smoothed(scores: Sequence[dict[str, float]], epochs: int) -> float:
    window = min(SMOOTHING_WINDOW, epochs)
    if len(scores) < window:
        return -math.inf
    return sum(row[HEAD_SCORE] for row in scores[-window:]) / window


def _ncm(scores: Sequence[dict[str, float]], epochs: int) -> float:
    return scores[-1][NCM_SCORE]


CHECKPOINT_RULES: dict[str, CheckpointRule] = {
    rule.name: rule
    for rule in (
        CheckpointRule("last", _last, copies_weights=False, reads_scores=False),
        CheckpointRule("best", _best),
        CheckpointRule("smoothed", _smoothed),
        CheckpointRule("ncm", _ncm, needs_ncm=True),
    )
}
DEFAULT_CHECKPOINT = "last"


def kept_epoch(rule: CheckpointRule, scores: Sequence[dict[str, float]]) -> int:
    """The 1-based epoch `rule` keeps from a finished training's validation scores (the same
    choice `CheckpointKeeper` makes as the epochs come)."""
    keeper = CheckpointKeeper({rule.name: rule}, len(scores))
    for epoch in range(1, len(scores) + 1):
        keeper.observe(scores[:epoch])
    return keeper.kept[rule.name]


class CheckpointKeeper:
    """Follows one or several rules over one training: after each epoch, `observe` returns
    the names of the rules that now keep that epoch (whose weights the trainer copies unless
    it is the final epoch); `kept` maps each rule to its kept epoch."""

    def __init__(self, rules: dict[str, CheckpointRule], epochs: int) -> None:
        self.rules, self.epochs = rules, epochs
        self.kept = {name: 0 for name in rules}
        self._merit = {name: -math.inf for name in rules}

    def observe(self, scores: Sequence[dict[str, float]]) -> list[str]:
        """Take the latest epoch's scores (all epochs so far); the rules that keep it."""
        keeping = []
        for name, rule in self.rules.items():
            merit = rule.merit(scores, self.epochs)
            if merit > self._merit[name] or (self.kept[name] == 0 and len(scores) == self.epochs):
                self._merit[name], self.kept[name] = merit, len(scores)
                keeping.append(name)
        return keeping
