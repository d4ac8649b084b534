"""Which stage-1 checkpoint rule to ship: every rule scored from the same trainings.

    OMP_NUM_THREADS=1 python benchmarks/checkpoint_rules.py synthetic --data-seeds 10-19
    OMP_NUM_THREADS=1 python benchmarks/checkpoint_rules.py skin --backbone resnet-compact \\
        --data-seeds 10-14 --data-root ../shared/data/ham10000

For each data seed (splits the study never uses) and each stage-1 recipe of `ce`, `ce+crt`,
`supcon+crt`, `triplet+crt` and `centre-triplet+crt`, stage 1 trains once at train seed 0 under
the dataset's default settings while every rule of `bench.components.checkpoints` watches;
each rule's kept weights then give features, cRT runs on them, and the row records validation
and test balanced accuracy after stage 2 (for `ce`, of the stage-1 head). Rows are appended to
the CSV as each training ends, so an interrupted measurement resumes where it stopped.
`--summarise` prints the table the docs show (`--markdown`: as they show it): per method and
rule, mean, std and worst validation balanced accuracy, how often the rule kept an epoch
before 75 % of training, and the test numbers beside them.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import pandas as pd
import torch

from bench.components.checkpoints import CHECKPOINT_RULES
from bench.components.metrics import balanced_accuracy
from bench.core.layout import cache_root
from bench.data.loading import load_imageset
from bench.data.specs import get_spec
from bench.experiment.experiment import settings_for
from bench.recipes.methods import MethodRegistry
from bench.stage1.artefacts import ArtefactCache, Stage1Artefact
from bench.stage1.job import Stage1Job, train_artefacts
from bench.stage2.decoupled import run_stage2

METHODS = ("ce", "ce+crt", "supcon+crt", "triplet+crt", "centre-triplet+crt")
TRAIN_SEED = 0
EARLY = 0.75  # a kept epoch before this share of training counts as early
FIELDS = (
    "dataset", "data_seed", "train_seed", "method", "rule", "kept_epoch", "epochs", "steps",
    "val_balanced_accuracy", "test_balanced_accuracy", "stage1_seconds",
)  # fmt: skip


def seed_list(text: str) -> list[int]:
    """Seeds written as a list and ranges: `10-19`, `0,2,5-7`."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def scores(artefact: Stage1Artefact, method_name: str, job: Stage1Job) -> dict[str, float]:
    """Validation and test balanced accuracy of a method on one rule's artefact."""
    method = MethodRegistry().get(method_name)
    logits = artefact.logits
    if method.stage2:
        with tempfile.TemporaryDirectory() as scratch:
            outcome = run_stage2(method.stage2, artefact, "", job, ArtefactCache(Path(scratch)))
        logits = outcome.logits
    return {
        f"{name}_balanced_accuracy": balanced_accuracy(
            job.labels(name).numpy(), logits[name].argmax(1).numpy()
        )
        for name in ("val", "test")
    }


def measure(args: argparse.Namespace) -> None:
    """Train what the CSV lacks and append its rows."""
    spec, registry = get_spec(args.dataset), MethodRegistry()
    done: set[tuple[int, str]] = set()
    if args.out.exists():
        done = {
            (int(row["data_seed"]), row["method"])
            for row in csv.DictReader(args.out.open())
            if row["dataset"] == spec.name
        }
    overrides = {"backbone": args.backbone} if args.backbone else {}
    by_stage1: dict[str, list[str]] = {}
    for name in METHODS:
        by_stage1.setdefault(registry.get(name).stage1.name, []).append(name)
    watched = tuple(rule for rule in CHECKPOINT_RULES)
    for data_seed in seed_list(args.data_seeds):
        imageset, split = None, None
        for names in by_stage1.values():
            if all((data_seed, name) in done for name in names):
                continue
            method = registry.get(names[0])
            settings = settings_for(spec, method, overrides).settings
            if imageset is None:
                imageset = load_imageset(
                    spec,
                    settings.image_size,
                    cache_dir=cache_root(),
                    data_root=args.data_root,
                    progress=False,
                )
                split = spec.split(imageset, data_seed)
            assert split is not None
            job = Stage1Job(
                method.stage1, imageset, split, settings, TRAIN_SEED, torch.device("cpu")
            )
            artefacts = train_artefacts(job, progress=True, also_watch=watched)
            rows = []
            for rule, artefact in artefacts.items():
                for name in names:
                    rows.append(
                        {
                            "dataset": spec.name,
                            "data_seed": data_seed,
                            "train_seed": TRAIN_SEED,
                            "method": name,
                            "rule": rule,
                            "kept_epoch": artefact.kept_epoch,
                            "epochs": artefact.schedule["epochs"],
                            "steps": artefact.schedule["total_steps"],
                            **scores(artefact, name, job),
                            "stage1_seconds": artefact.train_seconds,
                        }
                    )
            _append(args.out, rows)
            for row in rows:
                print(
                    f"seed {data_seed} {row['method']:<20} {row['rule']:<9} "
                    f"epoch {row['kept_epoch']:>3}/{row['epochs']}  "
                    f"val {row['val_balanced_accuracy']:.3f}",
                    flush=True,
                )


def _append(path: Path, rows: list[dict[str, object]]) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def summarise(path: Path) -> pd.DataFrame:
    """Per dataset, method and rule: validation balanced accuracy (mean, std, worst run), the
    share of runs whose kept epoch came before `EARLY` of training and the mean kept epoch as
    a share of training (percent), then the test mean and std (in points)."""
    rows = pd.read_csv(path)
    rows["rule"] = pd.Categorical(rows["rule"], categories=list(CHECKPOINT_RULES))
    rows["method"] = pd.Categorical(rows["method"], categories=list(METHODS))
    rows["early"] = rows["kept_epoch"] < EARLY * rows["epochs"]
    rows["kept_at"] = rows["kept_epoch"] / rows["epochs"]
    grouped = rows.groupby(["dataset", "method", "rule"], observed=True)
    table = grouped.agg(
        runs=("val_balanced_accuracy", "size"),
        val_mean=("val_balanced_accuracy", "mean"),
        val_std=("val_balanced_accuracy", "std"),
        val_worst=("val_balanced_accuracy", "min"),
        early=("early", "mean"),
        kept_at=("kept_at", "mean"),
        test_mean=("test_balanced_accuracy", "mean"),
        test_std=("test_balanced_accuracy", "std"),
    )
    points = ["val_mean", "val_std", "val_worst", "test_mean", "test_std"]
    table[points] = (100 * table[points]).round(1)
    table[["early", "kept_at"]] = (100 * table[["early", "kept_at"]]).round(0)
    return table


def markdown(table: pd.DataFrame) -> str:
    """`summarise`'s table for one dataset as the Markdown the docs show."""
    header = (
        "| method | rule | runs | val mean | val std | val worst | kept before 75 % "
        "| mean kept epoch | test (after the choice) |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for (_, method, rule), row in table.iterrows():
        lines.append(
            f"| {method} | {rule} | {int(row.runs)} | {row.val_mean:.1f} | {row.val_std:.1f} "
            f"| {row.val_worst:.1f} | {row.early:.0f} % | {row.kept_at:.0f} % "
            f"| {row.test_mean:.1f} ± {row.test_std:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--data-seeds", default="10-19")
    parser.add_argument("--backbone", help="override the dataset's default backbone")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path, help="CSV (default docs/checkpoint-rules/DATASET.csv)")
    parser.add_argument("--summarise", action="store_true", help="print the table and stop")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    args.out = args.out or Path("docs/checkpoint-rules") / f"{args.dataset}.csv"
    if not args.summarise:
        measure(args)
    table = summarise(args.out)
    print(markdown(table) if args.markdown else table.to_string())


if __name__ == "__main__":
    main()
