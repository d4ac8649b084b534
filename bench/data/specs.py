"""Dataset specs: one TOML file per dataset in `datasets/`, or made on the fly for
`imagefolder:PATH`, `csv:FILE` and `medmnist:FILE`; read and validated here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.components.settings import DEFAULT_PROFILE, check_settings
from bench.core.errors import BenchError, unknown_name
from bench.core.files import stable_hash
from bench.core.layout import datasets_dir
from bench.core.validation import Field, check_fields, read_toml, reject_unknown
from bench.data.download import RemoteFile, parse_remote_files
from bench.data.formats import FORMATS
from bench.data.imageset import ImageSet
from bench.data.longtail import LONGTAIL_RATIO
from bench.data.split import KEPT_SPLITS, Items, Split, make_split

AD_HOC = ("imagefolder", "csv", "medmnist")  # formats that `--dataset FORMAT:PATH` names directly


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: the formats it may be found in (tried in order), its classes (empty:
    taken from the data), split fractions, training defaults and downloadable files.
    `kept_splits` names the splits a source assigns that are kept as given (`[split] keep`);
    the others are drawn per data seed.

    `location` is set for ad-hoc datasets (`imagefolder:PATH`, `csv:FILE`, `medmnist:FILE`):
    the data itself, which replaces the search of data roots. `ordinal`: the classes are
    ordered grades (`[metrics] ordinal`, which adds quadratic-weighted kappa);
    `longtail_ratio`: the training classes are subsampled to this imbalance ratio
    (`[longtail] ratio`; None: as they are).
    """

    name: str
    description: str
    formats: tuple[str, ...]
    source: str
    classes: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    downloads: dict[str, tuple[RemoteFile, ...]] = field(default_factory=dict)
    location: Path | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    kept_splits: tuple[str, ...] = KEPT_SPLITS
    training: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile_notes: dict[str, str] = field(default_factory=dict)
    shot_groups: Any = "terciles"
    ordinal: bool = False
    longtail_ratio: float | None = None
    path: Path | None = None

    def split(self, imageset: ImageSet | Items, data_seed: int) -> Split:
        """The split of `imageset` (or of its items alone) that `data_seed` draws under this
        spec's fractions, kept splits and long-tail ratio."""
        return make_split(
            imageset,
            self.val_fraction,
            self.test_fraction,
            data_seed,
            self.kept_splits,
            self.longtail_ratio,
        )

    def training_for(self, profile: str | None) -> dict[str, Any]:
        """The `[training]` table with a named profile's settings over it (`cpu` or None: the
        table itself)."""
        if profile in (None, DEFAULT_PROFILE):
            return self.training
        if profile not in self.profiles:
            raise unknown_name(
                f"{self.name} training profile", profile, [DEFAULT_PROFILE, *self.profiles]
            )
        return {**self.training, **self.profiles[profile]}


def _require(table: dict[str, Any], key: str, kind: type, path: Path, where: str = "") -> Any:
    value = table.get(key)
    if not isinstance(value, kind):
        place = f"[{where}] " if where else ""
        raise BenchError(f"{path}: {place}field {key!r} must be a {kind.__name__}, got {value!r}.")
    return value


SPEC_KEYS = (
    "description", "formats", "source", "aliases", "classes",
    "params", "split", "training", "metrics", "download", "longtail",
)  # fmt: skip
SPLIT_KEYS = ("val", "test", "keep")
METRICS_KEYS = ("shot_groups", "ordinal")
LONGTAIL_FIELDS = {"ratio": LONGTAIL_RATIO}


def parse_spec(path: Path) -> DatasetSpec:
    """Read and validate one dataset spec file."""
    raw = read_toml(path)
    if "format" in raw and "formats" not in raw:
        raise BenchError(
            f"{path}: 'format' is now 'formats', a list tried in order: "
            f"formats = [{raw['format']!r}]."
        )
    reject_unknown(raw, SPEC_KEYS, str(path))
    for key in ("params", "split", "training", "metrics", "download", "longtail"):
        if not isinstance(raw.get(key, {}), dict):
            raise BenchError(f"{path}: [{key}] must be a table, got {raw[key]!r}.")
    formats = tuple(_require(raw, "formats", list, path))
    known = tuple(FORMATS)
    for fmt in formats:
        if fmt not in known:
            raise BenchError(
                f"{path}: field 'formats' lists {fmt!r}; supported: {', '.join(known)}."
            )
    classes = tuple(raw.get("classes", ()))
    aliases = raw.get("aliases", [])
    for key, values in (("classes", raw.get("classes", [])), ("aliases", aliases)):
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise BenchError(f"{path}: {key!r} must be a list of names, got {values!r}.")
        if len(set(values)) != len(values):
            raise BenchError(f"{path}: {key!r} lists a name twice: {values!r}.")
    split = raw.get("split", {})
    reject_unknown(split, SPLIT_KEYS, f"{path}: [split]")
    metrics = raw.get("metrics", {})
    reject_unknown(metrics, METRICS_KEYS, f"{path}: [metrics]")
    ordinal = Field(bool).check(metrics.get("ordinal", False), f"{path}: [metrics] 'ordinal'")
    longtail = check_fields(raw.get("longtail", {}), LONGTAIL_FIELDS, f"{path}: [longtail]")
    params = raw.get("params", {})
    reject_unknown(params, format_params(formats), f"{path}: [params]")
    _check_folder(params.get("folder"), path)
    training = dict(raw.get("training", {}))
    profiles, notes = {}, {}
    for name, table in training.pop("profiles", {}).items():
        where = f"{path}: [training.profiles.{name}]"
        if not isinstance(table, dict):
            raise BenchError(f"{where} must be a table of settings.")
        table = dict(table)
        notes[name] = str(table.pop("description", ""))
        profiles[name] = check_settings(table, where)
        if "weights" in table:
            raise BenchError(f"{where}: weights are given on the command line (--weights PATH).")
    if DEFAULT_PROFILE in profiles:
        raise BenchError(
            f"{path}: profile {DEFAULT_PROFILE!r} is the [training] table itself; "
            "name yours otherwise."
        )
    training = check_settings(training, f"{path}: [training]")
    if "weights" in training:
        raise BenchError(f"{path}: [training]: weights are given on the command line (--weights).")
    try:
        val, test = float(split.get("val", 0.15)), float(split.get("test", 0.15))
    except (TypeError, ValueError) as error:
        raise BenchError(f"{path}: [split] val and test must be numbers ({error}).") from error
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise BenchError(
            f"{path}: [split] val={val}, test={test} must be in (0, 1) and sum below 1."
        )
    keep = split.get("keep", list(KEPT_SPLITS))
    if (
        not isinstance(keep, list)
        or not all(isinstance(k, str) and k in KEPT_SPLITS for k in keep)
        or len(set(keep)) != len(keep)
    ):
        raise BenchError(
            f"{path}: [split] keep = {keep!r} must list the source's splits to keep as given, "
            f"each once, among {list(KEPT_SPLITS)} (train is always what the others leave; "
            "[] redraws every split)."
        )
    return DatasetSpec(
        name=path.stem,
        description=_require(raw, "description", str, path),
        formats=formats,
        source=raw.get("source", ""),
        classes=classes,
        aliases=tuple(aliases),
        params=params,
        downloads={
            name: parse_remote_files(files, f"{path}: [download.{name}]")
            for name, files in raw.get("download", {}).items()
        },
        val_fraction=val,
        test_fraction=test,
        kept_splits=tuple(k for k in KEPT_SPLITS if k in keep),
        training=training,
        profiles=profiles,
        profile_notes=notes,
        shot_groups=metrics.get("shot_groups", "terciles"),
        ordinal=ordinal,
        longtail_ratio=longtail.get("ratio"),
        path=path,
    )


def _check_folder(folder: Any, path: Path) -> None:
    """`[params] folder` is a path relative to a data root that stays under it."""
    if folder is None:
        return
    parts = Path(folder).parts if isinstance(folder, str) else ()
    if not parts or Path(folder).is_absolute() or ".." in parts:
        raise BenchError(
            f"{path}: [params] folder = {folder!r} must be a sub-folder of a data root (a "
            "relative path without '..'), e.g. folder = \"chest_xray\"."
        )


def format_params(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The `[params]` keys a spec of these formats may set: `folder` (the sub-folder looked for
    under a data root) and each format's own."""
    own = [p for f in formats for p in FORMATS.meta(f).params]
    return tuple(dict.fromkeys(["folder", *own]))


def all_specs(folder: Path | None = None) -> dict[str, DatasetSpec]:
    """Every dataset spec in `folder` (default: the project's `datasets/`), by name."""
    folder = folder or datasets_dir()
    return {p.stem: parse_spec(p) for p in sorted(folder.glob("*.toml"))}


def ad_hoc_spec(kind: str, location: Path) -> DatasetSpec:
    """The spec of `imagefolder:PATH`, `csv:FILE` or `medmnist:FILE`: classes from the data,
    default fractions and training settings, results under `<kind>-<name>-<hash of the
    absolute path>` (two folders called `data` in different places never share results),
    the name being the folder's (`imagefolder`), the CSV's folder and file stem (`csv`) or
    the npz file's stem (`medmnist`)."""
    expected = "folder" if kind == "imagefolder" else "file"
    if not location.exists():
        raise BenchError(f"{kind}:{location}: no such {expected}.")
    if kind == "medmnist" and not location.is_file():
        raise BenchError(
            f"medmnist:{location}: not a file; name an .npz file in MedMNIST's layout "
            "(`medmnist:PATH/NAME.npz`)."
        )
    names = {
        "imagefolder": location.name,
        "csv": f"{location.parent.name}-{location.stem}",  # usually labels.csv: the folder says
        "medmnist": location.stem,
    }
    where = stable_hash(str(location.resolve()), 8)
    return DatasetSpec(
        name=f"{kind}-{names[kind]}-{where}",
        description=f"{kind} data at {location}",
        formats=(kind,),
        source=str(location),
        classes=(),
        location=location,
    )


def get_spec(name: str, folder: Path | None = None) -> DatasetSpec:
    """The spec called `name` (or with `name` among its aliases); `imagefolder:PATH`,
    `csv:FILE` and `medmnist:FILE` name data directly."""
    kind, colon, location = name.partition(":")
    if colon and kind in AD_HOC:
        return ad_hoc_spec(kind, Path(location).expanduser())
    specs = all_specs(folder)
    for spec in specs.values():
        if name == spec.name or name in spec.aliases:
            return spec
    names = [*specs, *(a for s in specs.values() for a in s.aliases)]
    raise unknown_name("dataset", name, names, hint="`bench list datasets` shows them all.")


def results_spec(name: str, results_dir: Path) -> DatasetSpec | None:
    """The spec of a dataset whose results are reported: a named spec or alias, data named
    directly (`imagefolder:PATH`), or the results folder of ad-hoc data (`imagefolder-NAME`,
    `csv-NAME`, `medmnist-NAME`: their settings are the built-in defaults). None for a
    results folder whose spec is gone."""
    kind = name.partition("-")[0]
    if kind in AD_HOC and (results_dir / name).is_dir():
        return DatasetSpec(
            name=name, description=f"{kind} data", formats=(kind,), source="", classes=()
        )
    try:
        return get_spec(name)
    except BenchError:
        if (results_dir / name).is_dir():
            return None
        raise
