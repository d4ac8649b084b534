"""Options several commands share, and the argument types they parse with. Light on purpose:
building the parser imports nothing heavier than the settings' names."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bench.components.catalogue import BACKBONES
from bench.components.checkpoints import CHECKPOINT_RULES
from bench.components.settings import SETTING_NAMES, TrainingSettings
from bench.core.device import DEVICE_CHOICES
from bench.core.errors import BenchError
from bench.core.layout import cache_root
from bench.core.validation import finite_float, non_negative_int, parse_duration, positive_int
from bench.execution.executors.options import (
    EXECUTORS,
    ExecutorOptions,
    parse_minutes,
    resolve_options,
)
from bench.experiment.conditions import Conditions

if TYPE_CHECKING:
    from bench.data.specs import DatasetSpec

MAX_SEEDS = 1000  # per option: far more runs than any study needs
DEFAULTS = TrainingSettings()  # the built-in defaults the help quotes


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2, like every
    other user error (`--help` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def seeds(text: str) -> tuple[int, ...]:
    """Seeds as a list and ranges: `0,1,2`, `0-4`, `0-2,5`; each 0 or more, each once."""
    found: dict[int, None] = {}  # ordered, with O(1) membership
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise argparse.ArgumentTypeError(
                f"seeds are integers of 0 or more, as a list and ranges (0,1,2 or 0-4 or "
                f"0-2,5); got {text!r}"
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise argparse.ArgumentTypeError(f"seed range {item!r} runs backwards")
        if len(found) + last - first >= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"more than {MAX_SEEDS} seeds in {text!r}")
        for seed in range(first, last + 1):
            if seed in found:
                raise argparse.ArgumentTypeError(f"seed {seed} is given twice in {text!r}")
            found[seed] = None
    return tuple(found)


def duration(text: str) -> float:
    """An argparse type: seconds in `90`, `90s`, `30m`, `2h`."""
    try:
        return parse_duration(text)
    except BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def minutes(text: str) -> int:
    """An argparse type: a SLURM time limit in minutes."""
    try:
        return parse_minutes(text)
    except BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_settings(parser: argparse.ArgumentParser, meaning: str) -> None:
    """The overrides of the training settings (the same for run, sweep, report, status and
    compare)."""
    knobs = parser.add_argument_group(
        "overrides of the training settings (dataset spec, or a tuned method's own)", meaning
    )
    knobs.add_argument("--epochs", type=positive_int)
    knobs.add_argument("--image-size", type=positive_int)
    knobs.add_argument("--backbone", help=", ".join(BACKBONES))
    knobs.add_argument("--batch-size", type=positive_int)
    knobs.add_argument("--lr", type=finite_float, help="peak learning rate")
    knobs.add_argument(
        "--min-steps",
        type=non_negative_int,
        help="stage 1 runs at least this many optimiser steps, more epochs when the epochs "
        f"fall short (default {DEFAULTS.min_steps}; 0: the epochs alone)",
    )
    knobs.add_argument(
        "--checkpoint",
        choices=list(CHECKPOINT_RULES),
        help=f"the stage-1 epoch kept (default {DEFAULTS.checkpoint}; see "
        "bench/components/checkpoints.py)",
    )
    knobs.add_argument(
        "--pretrained",
        action="store_true",
        default=None,
        help="ImageNet weights for resnet18/50 (from torch's hub cache, or --weights)",
    )
    knobs.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        help="train from scratch, whatever the profile says (recorded)",
    )
    knobs.add_argument(
        "--weights",
        type=lambda text: str(Path(text).expanduser().resolve()),
        help="pretrained weights from a file: a torchvision state dict of the backbone "
        "(implies --pretrained; its digest enters the run id)",
    )
    knobs.add_argument(
        "--profile",
        help="a training profile of the dataset spec ([training.profiles.NAME], e.g. gpu: "
        "resnet50 at 224 px, pretrained); default cpu: its [training] table",
    )


def imbalance(text: str) -> float:
    """An argparse type: a long-tail imbalance ratio n_max/n_min (1 or more)."""
    from bench.data.longtail import LONGTAIL_RATIO

    try:
        return LONGTAIL_RATIO.check(finite_float(text), "R")
    except BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_imbalance(parser: argparse.ArgumentParser) -> None:
    """`--imbalance R`: the long-tailed protocol at ratio R (run and sweep; data info, and
    report, status and compare, which show the runs made at it)."""
    parser.add_argument(
        "--imbalance",
        type=imbalance,
        metavar="R",
        help="subsample the training classes to the exponential long-tail profile of "
        "imbalance ratio R = n_max/n_min (Cao et al. 2019; drawn by the data seed; val and "
        "test untouched; wins over the dataset spec's [longtail] ratio; enters the split's "
        "digest and the run id)",
    )


def conditions(args: argparse.Namespace) -> Conditions:
    """The conditions of a command's runs: the training settings given on the command line
    (None: not given), the profile, and the device, compile, data and imbalance options it
    has."""
    return Conditions(
        overrides={name: getattr(args, name, None) for name in SETTING_NAMES},
        profile=getattr(args, "profile", None),
        device=getattr(args, "device", "auto"),
        compile=getattr(args, "compile", False),
        data_root=getattr(args, "data_root", None),
        skip_bad=getattr(args, "skip_bad", False),
        cache_dir=cache_dir(args),
        imbalance=getattr(args, "imbalance", None),
    )


def cache_dir(args: argparse.Namespace) -> Path:
    """The cache folder a command uses: `--cache-dir`, else the default (`cache_root`)."""
    return cache_root(getattr(args, "cache_dir", None))


def add_training_place(parser: argparse.ArgumentParser) -> None:
    """Where training runs and how: the device and `--compile` (run and sweep)."""
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile stage 1 (recorded in run.json, not in the run id; falls back, "
        "saying why, where unsupported)",
    )


def add_executor(parser: argparse.ArgumentParser, unit: str) -> None:
    """Where the work runs (the same for run and sweep)."""
    group = parser.add_argument_group(
        "executors", f"Where the work runs ({unit}). Defaults < --executor-config < these."
    )
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="local (default: this process, or --jobs worker processes) or slurm (a job array "
        "through submitit)",
    )
    group.add_argument(
        "--jobs", type=positive_int, help="workers: local processes, or SLURM jobs at once"
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads per worker (recorded; default: the CPUs a worker was given)",
    )
    group.add_argument(
        "--executor-config", type=Path, help="TOML file with an [executor] table (see the docs)"
    )
    group.add_argument("--slurm-partition", help="partition to submit to")
    slurm = ExecutorOptions()
    group.add_argument(
        "--slurm-gpus", type=non_negative_int, help=f"GPUs per job (default {slurm.slurm_gpus})"
    )
    group.add_argument(
        "--slurm-cpus", type=positive_int, help=f"CPUs per job (default {slurm.slurm_cpus})"
    )
    group.add_argument("--slurm-mem-gb", type=finite_float, help="memory per job, GB")
    group.add_argument("--slurm-time", type=minutes, help="time limit per job: 90, 30m, 4h")
    group.add_argument(
        "--slurm-setup",
        action="append",
        help="shell line run before each job (repeatable), e.g. 'source ~/venv/bin/activate'",
    )
    group.add_argument(
        "--slurm-array-parallelism", type=positive_int, help="most array jobs running at once"
    )
    group.add_argument(
        "--no-slurm-probe",
        dest="slurm_probe",
        action="store_false",
        default=None,
        help="skip the probe job that checks the compute nodes see the results folder",
    )


def execution(args: argparse.Namespace) -> ExecutorOptions:
    """The executor options of a command: defaults < --executor-config < the command line."""
    given = {
        "name": args.executor,
        "jobs": args.jobs,
        "threads": args.threads,
        "slurm_partition": args.slurm_partition,
        "slurm_gpus": args.slurm_gpus,
        "slurm_cpus": args.slurm_cpus,
        "slurm_mem_gb": args.slurm_mem_gb,
        "slurm_time": args.slurm_time,
        "slurm_setup": tuple(args.slurm_setup or ()),
        "slurm_array_parallelism": args.slurm_array_parallelism,
        "slurm_probe": args.slurm_probe,
    }
    return resolve_options(args.executor_config, given)


def results_of(args: argparse.Namespace) -> tuple[Path, DatasetSpec | None, str]:
    """The results folder a command reads, the spec of `--dataset` there (None for a folder
    no spec names), and the folder's dataset name: a results folder is found by its name,
    otherwise the name may be an alias."""
    from bench.core.layout import default_results_dir
    from bench.data.specs import results_spec

    results_dir = args.results_dir or default_results_dir()
    spec = results_spec(args.dataset, results_dir)
    return results_dir, spec, spec.name if spec else args.dataset


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    """`--results-dir`."""
    parser.add_argument("--results-dir", type=Path, help="default: results/ in the project")


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    """`--cache-dir`."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="cache of decoded images and stage-1 artefacts (same as $BENCH_CACHE_DIR; "
        "default ~/.cache/medlt-bench)",
    )
