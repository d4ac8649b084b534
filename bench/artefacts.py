"""The stage-1 artefact cache: a trained network and its features, shared by stage-2 methods.

An artefact is stored under a key that hashes everything that changes stage 1 (data, split,
seeds, stage-1 recipe, training settings, device, the code that trains and loads data, and
the numeric libraries' versions: see `bench.code_digest`), so `ce`, `ce+crt` and `ce+lws`
train stage 1 once, and a changed field or module trains anew.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.code_digest import stage1_code
from bench.data.cache import cache_root
from bench.files import stable_hash, write_atomic, write_json_atomic


@dataclass
class Stage1Artefact:
    """A trained stage-1 network, its input statistics, and its features and logits per split."""

    state_dict: dict[str, torch.Tensor]
    model_spec: dict[str, Any]
    normalizer: tuple[torch.Tensor, torch.Tensor]
    features: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


def stage1_key(stage1_config: dict[str, Any]) -> str:
    """The cache key of a stage-1 configuration: the configuration, the digest of the code
    that trains stage 1 and loads its data, and the numeric libraries' versions."""
    return stable_hash({**stage1_config, "code": stage1_code()}, 16)


class ArtefactCache:
    """Stage-1 artefacts on disk: `<root>/stage1/<key>.pt` with a `<key>.json` description."""

    def __init__(self, root: Path | None = None) -> None:
        self.folder = (root or cache_root()) / "stage1"

    def load(self, key: str) -> Stage1Artefact | None:
        """The artefact stored under `key`, or None."""
        path = self.folder / f"{key}.pt"
        if not path.exists():
            return None
        return Stage1Artefact(**torch.load(path, weights_only=False))

    def save(self, key: str, artefact: Stage1Artefact, description: dict[str, Any]) -> None:
        """Store an artefact (atomically) and a JSON description for `bench cache list`."""
        buffer = io.BytesIO()
        torch.save(artefact.__dict__, buffer)
        write_atomic(self.folder / f"{key}.pt", buffer.getvalue())
        created = datetime.now(UTC).isoformat(timespec="seconds")
        write_json_atomic(
            self.folder / f"{key}.json",
            {**description, "key": key, "created": created, "code": stage1_code()},
        )

    def load_extra(self, key: str, name: str) -> torch.Tensor | None:
        """A tensor stored beside an artefact (such as augmented-view features), or None."""
        path = self.folder / f"{key}.{name}.pt"
        return torch.load(path) if path.exists() else None

    def save_extra(self, key: str, name: str, tensor: torch.Tensor) -> None:
        """Store a tensor beside an artefact; it is cleared with it."""
        buffer = io.BytesIO()
        torch.save(tensor, buffer)
        write_atomic(self.folder / f"{key}.{name}.pt", buffer.getvalue())

    def entries(self) -> list[dict[str, Any]]:
        """Descriptions of every stored artefact, with their size on disk in bytes and whether
        they are stale: made by other code or library versions than the current ones, so no
        key computed now can reach them (`bench cache clear` removes them)."""
        rows = []
        for meta in sorted(self.folder.glob("*.json")):
            key = meta.stem
            size = sum(p.stat().st_size for p in self.folder.glob(f"{key}*"))
            description = json.loads(meta.read_text())
            stale = description.get("code") != stage1_code()
            rows.append({**description, "bytes": size, "stale": stale})
        return rows

    def clear(self) -> int:
        """Delete every artefact; returns how many there were."""
        count = len(list(self.folder.glob("*.json")))
        shutil.rmtree(self.folder, ignore_errors=True)
        return count
