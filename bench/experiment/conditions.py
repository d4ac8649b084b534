"""The conditions an invocation fixes for every run it makes, besides methods and seeds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.layout import cache_root


@dataclass(frozen=True)
class Conditions:
    """The command line's overrides of the training settings (None: not given) and the spec
    profile they apply over, the device (`auto` until resolved) and whether stage 1 is
    compiled, where the data is read from and whether unreadable images are skipped, and
    the cache folder (decoded images and stage-1 artefacts; in no run id).
    One bundle, nested in what a run, a sweep, a unit of work and a record carry."""

    overrides: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    device: str = "auto"
    compile: bool = False
    data_root: Path | None = None
    skip_bad: bool = False
    cache_dir: Path = field(default_factory=cache_root)

    def given(self) -> dict[str, Any]:
        """The overrides that were given."""
        return {name: value for name, value in self.overrides.items() if value is not None}

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
