"""The report of `bench data info`: where a dataset was looked for and what was found there."""

from __future__ import annotations

from pathlib import Path

from bench.data.formats import FORMATS
from bench.data.loading import locate, search
from bench.data.specs import DatasetSpec
from bench.data.split import describe_split
from bench.data.table import SPLIT_NAMES, counts_by_class


def describe(
    spec: DatasetSpec, data_root: Path | None, cache_dir: Path, data_seed: int | None = None
) -> str:
    """A readable account of the search, the format and root found, classes, groups, splits
    (with `data_seed`, the split it draws)."""
    if spec.formats and FORMATS.meta(spec.formats[0]).generated:
        return f"{spec.name}: {FORMATS.meta(spec.formats[0]).layout_help}"
    aliases = f" (alias {', '.join(spec.aliases)})" if spec.aliases else ""
    lines = [f"{spec.name}{aliases}: formats tried {', '.join(spec.formats)}"]
    if spec.ordinal:
        lines.append("task: ordinal grades, in class order (quadratic-weighted kappa reported)")
    lines.append("looked in:")
    result = search(spec, data_root, cache_dir)
    for root, fmt in result.looked:
        found = f"{fmt} <- used" if result.found == (root, fmt) else (fmt or "-")
        lines.append(f"  {root}  {found}")
    if result.found is None:
        lines.append("found: nothing.")
        lines += [f"  {FORMATS.meta(f).layout_help}" for f in spec.formats]
    else:
        source = locate(spec, result)
        table = source.table
        groups = table["group"].nunique()
        lines.append(
            f"found: {source.format} at {source.root}: {len(table)} images, "
            f"{len(source.class_names)} classes, {groups} groups"
            + (" (each image its own)" if groups == len(table) else " (lesions/patients)")
        )
        given = table["split"].value_counts()
        if given.get("", 0) == len(table):
            lines.append(
                f"splits: drawn per data seed, group-aware (val {spec.val_fraction}, test "
                f"{spec.test_fraction})"
            )
        else:
            parts = ", ".join(f"{s} {int(given.get(s, 0))}" for s in SPLIT_NAMES)
            kept = [s for s in spec.kept_splits if given.get(s, 0)]
            lines.append(
                f"splits given by the source: {parts}, unassigned {int(given.get('', 0))}; "
                f"kept as given: {', '.join(kept) or 'none'} (the others are drawn per data "
                "seed from the rest)"
            )
        counts = counts_by_class(table, source.class_names)
        width = max(len(c) for c in counts)
        lines.append("images per class:")
        lines += [f"  {name:{width}}  {count}" for name, count in counts.items()]
        lines += [f"{key.replace('_', ' ')}: {value}" for key, value in source.notes.items()]
        lines.append(f"content digest: {source.content}")
        if data_seed is not None:
            lines += describe_split(spec, source, data_seed)
    if spec.downloads:
        sources = ", ".join(f"{k} ({len(v)} file(s))" for k, v in spec.downloads.items())
        lines.append(f"downloads: {sources}: `bench data download {spec.name} [--source NAME]`")
    return "\n".join(lines)
