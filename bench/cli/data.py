"""`bench data`: locate, inspect or download a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli import options
from bench.core.validation import non_negative_int

if TYPE_CHECKING:
    from bench.data.specs import DatasetSpec


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench data info|download` and their options."""
    parser = commands.add_parser("data", help="locate, inspect or download a dataset")
    actions = parser.add_subparsers(dest="action", required=True)
    info = actions.add_parser(
        "info", help="where a dataset was looked for, what was found, its classes and splits"
    )
    info.add_argument("name", help="dataset name, imagefolder:PATH, csv:FILE or medmnist:FILE")
    info.add_argument("--data-root", type=Path, help="look here first (as `bench run` does)")
    info.add_argument(
        "--data-seed",
        type=non_negative_int,
        help="also draw the split of this data seed from the item table (no image decoded) and "
        "show its images per class and training ratio (default with --imbalance or a spec's "
        "[longtail] ratio: 0)",
    )
    options.add_imbalance(info)
    download = actions.add_parser(
        "download", help="fetch a dataset's public files (resumable, checksum-verified)"
    )
    download.add_argument("name", help="dataset name")
    download.add_argument("--source", help="which of the dataset's downloads (default: the first)")
    download.add_argument(
        "--to", type=Path, help="folder to save into (default: <cache>/data/<dataset>)"
    )
    download.add_argument("--no-progress", action="store_true", help="hide progress bars")
    for sub in (info, download):
        options.add_cache_dir(sub)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Describe the dataset, or download its files."""
    from bench.data.inventory import describe
    from bench.data.specs import get_spec

    spec = options.conditions(args).resolve_spec(get_spec(args.name))
    if args.action == "download":
        _download(spec, args)
    else:
        data_seed = args.data_seed
        if data_seed is None and spec.longtail_ratio is not None:
            data_seed = 0
        print(describe(spec, args.data_root, options.cache_dir(args), data_seed))
    return 0


def _download(spec: DatasetSpec, args: argparse.Namespace) -> None:
    """Fetch the files of one of the dataset's downloads (`--source`) and say where they are."""
    from bench.data.download import fetch_dataset
    from bench.data.loading import data_home

    folder = args.to or data_home(options.cache_dir(args)) / spec.name
    source, fetched = fetch_dataset(
        spec.name, spec.downloads, args.source, folder, progress=not args.no_progress
    )
    for path, check in fetched:
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {check})")
    where = "--data-root" if args.to else "no --data-root: the cache is searched"
    print(f"{spec.name}: {source} is in {folder} (to use it: {where}).")
