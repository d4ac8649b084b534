"""The conditions an invocation fixes for every run it makes, besides methods and seeds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.layout import cache_root

if TYPE_CHECKING:
    from bench.data.specs import DatasetSpec


@dataclass(frozen=True)
class Conditions:
    """The command line's overrides of the training settings (None: not given) and the spec
    profile they apply over, the device (`auto` until resolved) and whether stage 1 is
    compiled, where the data is read from and whether unreadable images are skipped, the
    cache folder (decoded images and stage-1 artefacts; in no run id), and the long-tail
    imbalance ratio (`--imbalance`) over the dataset spec's (see `resolve_spec`).
    One bundle, nested in what a run, a sweep, a unit of work and a record carry."""

    overrides: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    device: str = "auto"
    compile: bool = False
    data_root: Path | None = None
    skip_bad: bool = False
    cache_dir: Path = field(default_factory=cache_root)
    imbalance: float | None = None

    def given(self) -> dict[str, Any]:
        """The overrides that were given."""
        return {name: value for name, value in self.overrides.items() if value is not None}

    def resolve_spec(self, spec: DatasetSpec) -> DatasetSpec:
        """`spec` as these conditions take it: `--imbalance`, when given, replaces its
        `[longtail] ratio`, so that every split it draws (here, in workers, in sweeps) is
        long-tailed alike."""
        if self.imbalance is None:
            return spec
        return dataclasses.replace(spec, longtail_ratio=self.imbalance)

    def for_workers(self, device: str) -> Conditions:
        """These conditions as another process needs them: the device resolved, the data
        root and the cache absolute, only the overrides given."""
        root = self.data_root.resolve() if self.data_root else None
        return dataclasses.replace(
            self,
            overrides=self.given(),
            device=device,
            data_root=root,
            cache_dir=self.cache_dir.resolve(),
        )
