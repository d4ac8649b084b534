"""`bench list`: the registered methods or datasets."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench list methods|datasets`."""
    parser = commands.add_parser("list", help="list registered methods or datasets")
    parser.add_argument("what", choices=("methods", "datasets"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print every method (recipes, compositions, lists) or every dataset spec."""
    if args.what == "methods":
        _methods()
    else:
        _datasets()
    return 0


def _methods() -> None:
    from bench.recipes.methods import MethodRegistry

    registry = MethodRegistry()
    print("Stage-1 recipes (alone: one-stage methods):")
    for recipe in registry.stage1.values():
        print(f"  {recipe.name:18} {recipe.description}")
        print(f"  {'':18} {recipe.summary()}  [{recipe.reference}]")
    print("\nStage-2 recipes (compose as STAGE1+STAGE2, e.g. supcon+crt):")
    for stage2 in registry.stage2.values():
        print(f"  {stage2.name:18} {stage2.description}")
        print(f"  {'':18} {stage2.summary()}  [{stage2.reference}]")
    for name, members in registry.lists.items():
        print(f"\nlist {name!r} ({len(members)} methods): {', '.join(members)}")


def _datasets() -> None:
    from bench.data.specs import all_specs

    for spec in all_specs().values():
        aliases = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
        classes = f"{len(spec.classes)} classes" if spec.classes else "classes from the data"
        print(f"{spec.name:12} {spec.description}{aliases}")
        print(f"{'':12} formats: {', '.join(spec.formats)}; {classes}")
        print(f"{'':12} defaults (profile cpu): {spec.training}")
        for name, note in spec.profile_notes.items():
            print(f"{'':12} profile {name}: {note or spec.profiles[name]}")
        print(f"{'':12} source: {spec.source}")
