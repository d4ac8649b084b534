"""The stage-1 artefact cache: a trained network and its features, shared by stage-2 methods.

An artefact is stored under a key that hashes everything that changes stage 1 (data, split,
seeds, stage-1 recipe, training settings, device, the code that trains and loads data, and
the numeric libraries' versions: see `bench.core.code_digest`), so `ce`, `ce+crt` and `ce+lws`
train stage 1 once, and a changed field or module trains anew.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bench.core import safe_store
from bench.core.claims import busy, note_use
from bench.core.code_digest import stage1_code
from bench.core.files import stable_hash


@dataclass
class Stage1Artefact:
    """A trained stage-1 network, its input statistics, and its features and logits per split."""

    state_dict: dict[str, torch.Tensor]
    model_spec: dict[str, Any]
    normalizer: tuple[torch.Tensor, torch.Tensor]
    features: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]
    kept_epoch: int  # the epoch the checkpoint rule of its settings kept
    schedule: dict[str, Any] = field(default_factory=dict)  # `Schedule.as_dict()`
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    compiled: str = ""  # trained with --compile: `compiled`, or why not


def stage1_key(stage1_config: dict[str, Any]) -> str:
    """The cache key of a stage-1 configuration: the configuration, the digest of the code
    that trains stage 1 and loads its data, and the numeric libraries' versions."""
    return stable_hash({**stage1_config, "code": stage1_code()}, 16)


class ArtefactCache:
    """Stage-1 artefacts on disk: `<root>/stage1/<key>.pt` with its `<key>.json` description,
    and extras beside them (`<key>.<name>.pt`); every file holds data only and is verified
    before use (`bench.core.safe_store`): an unusable entry is discarded, said, and trained anew."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "stage1"

    def _read(self, path: Path, repair: bool) -> Any:
        stored = safe_store.load(path)
        if isinstance(stored, safe_store.Unusable):
            if repair:
                tqdm.write(stored.message())
                safe_store.discard(path)
            return None
        return stored

    def load(self, key: str, repair: bool = True) -> Stage1Artefact | None:
        """The artefact stored under `key`, or None. An unusable entry is discarded (and
        said) when `repair`; a reader that does not hold the key's claim passes False, since
        an entry being saved by its holder looks unusable until its description is written."""
        path = self.folder / f"{key}.pt"
        note_use(self.folder.parent, f"stage1/{key}")  # `bench cache clear` leaves it be
        stored = self._read(path, repair)
        if stored is None:
            return None
        try:
            return Stage1Artefact(**stored)
        except TypeError as error:  # verified data of another shape: an older layout
            if repair:
                tqdm.write(safe_store.Unusable(path, f"not an artefact: {error}").message())
                safe_store.discard(path)
            return None

    def save(self, key: str, artefact: Stage1Artefact, description: dict[str, Any]) -> None:
        """Store an artefact with its description (for `bench cache list`) and digest."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        note_use(self.folder.parent, f"stage1/{key}")
        safe_store.save(
            self.folder / f"{key}.pt",
            artefact.__dict__,
            {**description, "key": key, "created": created, "code": stage1_code()},
        )

    def has(self, key: str) -> bool:
        """Whether an entry is stored under `key` (unverified: for planning, not for use)."""
        return (self.folder / f"{key}.pt").exists() and (self.folder / f"{key}.json").exists()

    def load_extra(self, key: str, name: str) -> torch.Tensor | None:
        """A tensor stored beside an artefact (such as augmented-view features), or None."""
        note_use(self.folder.parent, f"stage1/{key}")
        stored = self._read(self.folder / f"{key}.{name}.pt", repair=True)
        return stored if isinstance(stored, torch.Tensor) else None

    def save_extra(self, key: str, name: str, tensor: torch.Tensor) -> None:
        """Store a tensor beside an artefact; it is cleared with it."""
        safe_store.save(self.folder / f"{key}.{name}.pt", tensor, {"of": key, "extra": name})

    def entries(self) -> list[dict[str, Any]]:
        """Every stored artefact and extra (also a data file without its description), with
        its size in bytes and whether it is stale: made by other code or library versions, or
        without a digest, so no key computed now reaches it (`bench cache clear` removes it)."""
        rows = [
            {"key": meta.stem, "extra": "", "bytes": meta.stat().st_size, "stale": True}
            for meta in sorted(self.folder.glob("*.json"))
            if not meta.with_suffix(".pt").exists()  # a description left without its data
        ]
        for data in sorted(self.folder.glob("*.pt")):
            described = safe_store.description(data) or {}
            key, _, extra = data.stem.partition(".")
            owner = safe_store.description(self.folder / f"{key}.pt") or {}
            size = data.stat().st_size + sum(
                p.stat().st_size for p in [data.with_suffix(".json")] if p.exists()
            )
            rows.append(
                {
                    **described,
                    "key": data.stem,
                    "extra": extra,
                    "bytes": size,
                    "described": "sha256" in described,
                    "stale": "sha256" not in described or owner.get("code") != stage1_code(),
                }
            )
        return rows

    def clear(self) -> tuple[int, dict[str, str]]:
        """Delete every artefact and extra with its description, except those a live process
        uses or is writing; returns how many artefacts were removed, and the keys kept with
        who holds them."""
        kept = busy(self.folder)
        removed = sum(
            1 for p in self.folder.glob("*.pt") if "." not in p.stem and p.stem not in kept
        )
        for path in [*self.folder.glob("*.pt"), *self.folder.glob("*.json")]:
            if path.name.partition(".")[0] not in kept:
                path.unlink(missing_ok=True)
        return removed, kept
