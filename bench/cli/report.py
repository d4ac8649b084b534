"""`bench report`: tables, statistics and plots from the finished runs of a dataset."""

from __future__ import annotations

import argparse

from bench.cli import options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench report` and its options."""
    parser = commands.add_parser(
        "report",
        help="tables, statistics and plots from the finished runs",
        description="Write results/<dataset>/report/: main, per-class and significance tables "
        "(Markdown, CSV, LaTeX), figures (PNG, PDF with --pdf) and a self-contained index.html.",
    )
    parser.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument(
        "--methods", help="comma-separated methods or lists to include (default: every method run)"
    )
    parser.add_argument(
        "--reference",
        help="method the others are tested against (default: the two-stage method without "
        "metric learning with the best validation balanced accuracy)",
    )
    parser.add_argument(
        "--plot-methods",
        help="comma-separated methods for the per-method figures (default: ce, the reference, "
        "the best of each family by validation balanced accuracy)",
    )
    parser.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    options.add_imbalance(parser)
    options.add_settings(parser, "The runs reported are those made at these settings.")
    parser.add_argument(
        "--all-settings",
        action="store_true",
        help="report every finished run, whatever its settings (a method run at several "
        "settings gets a row per variant)",
    )
    options.add_results_dir(parser)
    options.add_cache_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the report and say where it is."""
    from bench.core.files import ensure_writable
    from bench.recipes.methods import MethodRegistry
    from bench.recipes.variants import split_outside_brackets
    from bench.report.build import build_report
    from bench.report.collect import load_results
    from bench.results.store import ResultsStore

    results_dir, spec, name = options.results_of(args)
    registry = MethodRegistry()
    methods = None
    if args.methods:
        methods = [m.name for m in registry.expand(args.methods)]
    plot_methods = None
    if args.plot_methods:  # commas inside a variant's brackets do not split it
        plot_methods = [m.strip() for m in split_outside_brackets(args.plot_methods, ",")]
    settings_ids = None
    if spec is None:
        print(f"note: no dataset spec named {name!r}: every run is shown, whatever its settings")
    elif not args.all_settings:
        store = ResultsStore(results_dir, spec.name)
        settings_ids = store.current_ids(spec, registry, options.conditions(args), methods)
    if (results_dir / name).is_dir():
        ensure_writable(results_dir / name, "the results folder", "choose it with --results-dir")
    results = load_results(results_dir, name, methods, settings_ids)
    report = build_report(
        results,
        cache_dir=options.cache_dir(args),
        reference=args.reference,
        plot_methods=plot_methods,
        pdf=args.pdf,
    )
    for note in report.notes:
        print(f"note: {note}")
    print(
        f"report: {len(report.files)} files in {report.folder}; open {report.folder / 'index.html'}"
    )
    return 0
