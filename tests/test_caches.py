"""The caches hold data only: verified by digest, never unpickling code, self-healing."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import run_tiny

from bench.cli.main import main
from bench.core import safe_store
from bench.core.layout import cache_root
from bench.data.cache import ImageCache
from bench.data.imageset import ImageSet
from bench.stage1 import job as stage1_job
from bench.stage1.artefacts import ArtefactCache, Stage1Artefact


class _Payload:
    """Unpickling this runs `open(marker, "w")`: what a crafted cache file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(path: Path, payload: object) -> None:
    """Write `payload` as an entry whose recorded digest matches (an attacker can write both)."""
    data = pickle.dumps({"state_dict": payload})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    description = {"sha256": hashlib.sha256(data).hexdigest(), "dataset": "x", "stage1": "ce"}
    path.with_suffix(".json").write_text(json.dumps(description))


def _artefact() -> Stage1Artefact:
    features = {"train": torch.randn(4, 3)}
    logits = {"train": torch.zeros(4, 2)}
    normalizer = (torch.zeros(3), torch.ones(3))
    return Stage1Artefact(
        {"w": torch.ones(2)}, {"head": "linear"}, normalizer, features, logits, 1, [], 0.5
    )


def test_an_entry_holding_a_pickled_callable_is_refused_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ArtefactCache(tmp_path)
    marker = tmp_path / "ran"
    _plant(cache.folder / "k1.pt", _Payload(marker))
    assert cache.load("k1") is None
    assert not marker.exists()  # the callable never ran
    assert "unusable (not plain tensors and data, refused" in capsys.readouterr().out
    assert not (cache.folder / "k1.pt").exists()  # discarded, to be computed anew


def test_a_corrupt_or_undescribed_entry_is_discarded_and_a_good_one_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ArtefactCache(tmp_path)
    cache.save("good", _artefact(), {"dataset": "x", "stage1": "ce"})
    assert torch.equal(cache.load("good").state_dict["w"], torch.ones(2))
    data = bytearray((cache.folder / "good.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (cache.folder / "good.pt").write_bytes(bytes(data))
    assert cache.load("good") is None
    assert "does not match its recorded SHA-256" in capsys.readouterr().out
    cache.save("old", _artefact(), {"dataset": "x", "stage1": "ce"})
    (cache.folder / "old.json").unlink()  # as written before entries carried a digest
    assert cache.load("old") is None
    assert "no description with a digest" in capsys.readouterr().out


def test_cache_list_shows_every_entry_and_clear_takes_images_too(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    ArtefactCache(cache).save("fresh", _artefact(), {"dataset": "x", "stage1": "ce"})
    orphan = cache / "stage1" / "orphan.pt"
    orphan.write_bytes(b"left without a description")
    images = ImageSet("x", torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]),
                      ["a", "b"], ["a", "b"], ("p", "q"), "f")  # fmt: skip
    ImageCache(cache).get("img", lambda: images)
    assert (cache / "images" / "img.json").exists()
    capsys.readouterr()
    assert main(["cache", "list", "--cache-dir", str(cache)]) == 0
    listing = capsys.readouterr().out
    assert "orphan" in listing and "no description" in listing
    (cache / "stage1" / "lost.json").write_text("{}")  # a description without its data
    assert main(["cache", "list", "--stage1", "--cache-dir", str(cache)]) == 0
    assert "lost" in capsys.readouterr().out
    assert "2 stage-1 artefact(s) and extras" in listing and "1 stale" in listing
    assert "1 decoded image set(s)" in listing and "2 images at 8 px" in listing
    assert main(["cache", "clear", "--images", "--cache-dir", str(cache)]) == 0
    assert not list((cache / "images").iterdir()) and (cache / "stage1" / "fresh.pt").exists()
    (cache / "stage1" / "k.claim").write_text("{}")  # a running process's claim
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert [p.name for p in (cache / "stage1").iterdir()] == ["k.claim"]
    assert os.environ["BENCH_CACHE_DIR"] != str(cache)  # --cache-dir is passed, not exported


@pytest.mark.slow
def test_a_run_over_a_corrupt_artefact_says_so_and_trains_again(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert run_tiny(tmp_path / "r", "ce", "--no-report") == 0
    (artefact,) = ArtefactCache(cache_root()).folder.glob("*.pt")
    artefact.write_bytes(artefact.read_bytes()[:100])  # truncated
    trained: list[str] = []
    real = stage1_job.train_artefact
    monkeypatch.setattr(
        stage1_job, "train_artefact", lambda job, *a: trained.append("x") or real(job, *a)
    )
    capsys.readouterr()
    assert run_tiny(tmp_path / "r2", "ce", "--no-report") == 0
    assert trained == ["x"] and "is unusable" in capsys.readouterr().out
    assert safe_store.load(artefact) is not None  # stored anew, verified


def test_a_corrupt_decoded_image_cache_is_decoded_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = ImageSet("x", torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]),
                      ["a", "b"], ["a", "b"], ("p", "q"), "f")  # fmt: skip
    built: list[int] = []

    def build() -> ImageSet:
        built.append(1)
        return images

    cache = ImageCache(tmp_path)
    cache.get("k", build)
    (tmp_path / "images" / "k.pt").write_bytes(b"garbage")
    assert torch.equal(cache.get("k", build).images, images.images)
    assert built == [1, 1] and "is unusable" in capsys.readouterr().out
    assert cache.get("k", build).fingerprint == "f" and built == [1, 1]
