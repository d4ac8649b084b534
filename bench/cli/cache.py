"""`bench cache`: list or clear cached stage-1 artefacts and decoded images."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cli import options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench cache list|clear` and its options."""
    parser = commands.add_parser(
        "cache",
        help="list or clear cached stage-1 artefacts and decoded images",
        description="List or clear the caches: stage-1 artefacts and decoded image sets (both "
        "unless one is named).",
    )
    parser.add_argument("action", choices=("list", "clear"))
    parser.add_argument("--stage1", action="store_true", help="only the stage-1 artefacts")
    parser.add_argument("--images", action="store_true", help="only the decoded image sets")
    options.add_cache_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List the entries, or clear those no live process uses."""
    from bench.data.cache import ImageCache
    from bench.stage1.artefacts import ArtefactCache

    root = options.cache_dir(args)
    stage1, images = ArtefactCache(root), ImageCache(root)
    both = not (args.stage1 or args.images)
    if args.action == "clear":
        if both or args.stage1:
            _cleared(*stage1.clear(), "stage-1 artefact(s)", stage1.folder)
        if both or args.images:
            _cleared(*images.clear(), "decoded image set(s)", images.folder)
        return 0
    if both or args.stage1:
        _listed(
            stage1.entries(),
            stage1.folder,
            "stage-1 artefact(s) and extras",
            lambda e: (
                f"{e.get('dataset', '?'):10} {e.get('stage1', e.get('extra', '?')):16} "
                f"data_seed={e.get('data_seed', '?')} train_seed={e.get('train_seed', '?')}"
            ),
        )
    if both or args.images:
        _listed(
            images.entries(),
            images.folder,
            "decoded image set(s)",
            lambda e: (
                f"{e.get('dataset', '?'):10} {e.get('images', '?')} images at "
                f"{e.get('size', '?')} px"
            ),
        )
    return 0


def _cleared(removed: int, kept: dict[str, str], kind: str, folder: Path) -> None:
    """What `bench cache clear` did in one folder, naming each entry it left to a live process."""
    print(f"removed {removed} {kind} from {folder}")
    for key, holder in sorted(kept.items()):
        print(f"  kept {key}: in use by {holder} (clear it again once that process has ended)")


def _listed(
    entries: list[dict[str, Any]], folder: Path, kind: str, describe: Callable[[dict], str]
) -> None:
    """One line per cache entry (an entry without its description is listed too), then the
    totals; stale entries are never served."""
    for entry in entries:
        print(
            f"{entry['key']}  {describe(entry)}  {entry['bytes'] / 1e6:.1f} MB  "
            f"{entry.get('created', 'no description')}" + ("  stale" if entry["stale"] else "")
        )
    total = sum(e["bytes"] for e in entries) / 1e6
    stale = sum(e["stale"] for e in entries)
    tail = f"; {stale} stale (other code or libraries, or no digest: never served)" if stale else ""
    print(f"{len(entries)} {kind}, {total:.1f} MB, in {folder}{tail}")
