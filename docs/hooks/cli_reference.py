"""MkDocs hook: the command-line reference, rendered from `bench`'s own argument parser.

The page `reference/cli.md` holds a marker; on every build this hook replaces it with each
command's usage, description and arguments as the parser declares them (flags, choices,
defaults, help), so the reference cannot drift from the code. Nothing is written to the source
tree: the rendered Markdown exists only in the build.
"""

import argparse
import html
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from mkdocs.exceptions import PluginError

from bench.cli.main import build_parser  # the one line to change if the parser moves

PAGE = "reference/cli.md"
MARKER = "<!-- cli-reference -->"
USAGE_WIDTH = 100  # fixed, so the page does not depend on the terminal that builds it

# What the parser's own converters accept, by function name (bench/cli/main.py and the checks
# it uses from bench/core/validation.py); a converter not named here adds nothing.
VALUE_KINDS = {
    "positive_int": "an integer ≥ 1",
    "non_negative_int": "an integer ≥ 0",
    "finite_float": "a finite number",
    "_seeds": "seeds as a list and ranges (`0,1,2`, `0-4`, `0-2,5`)",
    "_duration": "a duration (`90s`, `30m`, `2h`)",
    "_minutes": "minutes, or `30m`, `4h`, `1d`, `h:mm:ss`",
    "Path": "a path",
}

Command = tuple[argparse.ArgumentParser, str]  # a (sub-)parser and its one-line help


def on_files(files, config):
    """Stop the build if the reference page has gone: the hook would have nowhere to write."""
    if files.get_file_from_path(PAGE) is None:
        raise PluginError(f"docs/{PAGE} is missing: the command-line reference has no page")
    return files


def on_page_markdown(markdown, page, config, files):
    """Replace the marker of the reference page with the rendered parser."""
    if PurePosixPath(page.file.src_uri) != PurePosixPath(PAGE):
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{PAGE} has lost its marker {MARKER!r}")
    return markdown.replace(MARKER, render(build_parser()))


def render(parser: argparse.ArgumentParser) -> str:
    """The whole reference: the top-level usage, an index of commands, then each command."""
    commands = list(_walk(parser))
    lines = ["```text", _usage(parser), "```", ""]
    lines += ["| command | what it does |", "|---|---|"]
    for sub, summary in commands:
        lines.append(f"| [`{sub.prog}`](#{_slug(sub.prog)}) | {_cell(summary)} |")
    lines.append("")
    for sub, summary in commands:
        lines += _command(sub, summary)
    return "\n".join(lines)


def _walk(parser: argparse.ArgumentParser) -> Iterator[Command]:
    """Every sub-command in declaration order, nested ones after their parent (`bench data`,
    `bench data info`, `bench data download`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield sub, summaries.get(name, "")
                yield from _walk(sub)


def _command(parser: argparse.ArgumentParser, summary: str) -> list[str]:
    """One command: heading, summary, description, usage, then a table per argument group."""
    level = parser.prog.count(" ") + 1  # `bench run`: ##, `bench data info`: ###
    lines = [f"{'#' * level} {parser.prog}", ""]
    if summary:
        lines += [_text(_sentence(summary)), ""]
    if parser.description and parser.description != summary:
        lines += [_text(parser.description), ""]
    lines += ["```text", _usage(parser), "```", ""]
    for group in parser._mutually_exclusive_groups:
        if group._group_actions:
            flags = ", ".join(f"`{action.option_strings[0]}`" for action in group._group_actions)
            need = "exactly one of" if group.required else "at most one of"
            lines += [f"Give {need} {flags}.", ""]
    for group in parser._action_groups:
        actions = [action for action in group._group_actions if _documented(action)]
        if not actions:
            continue
        title = group.title or "arguments"
        lines += [f"**{_text(title[0].upper() + title[1:])}**", ""]
        if group.description:
            lines += [_text(group.description), ""]
        lines += ["| argument | meaning | default |", "|---|---|---|"]
        for action in actions:
            lines.append(f"| {_invocation(action)} | {_meaning(action)} | {_default(action)} |")
        lines.append("")
    return lines


def _documented(action: argparse.Action) -> bool:
    """Every argument but `-h/--help` (stated once on the page) and sub-command slots."""
    return not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _invocation(action: argparse.Action) -> str:
    """The flags as typed (`--seeds SEEDS`); choices are listed in the meaning instead."""
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    value = ""
    if action.nargs != 0 and not action.choices:
        value = " " + (action.metavar or action.dest.upper())
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def _meaning(action: argparse.Action) -> str:
    """The help string as written, then what the value may be, its choices, and whether the
    flag is required or repeatable."""
    parts = []
    if action.help and action.help is not argparse.SUPPRESS:
        try:  # argparse expands %(default)s and the like in help strings
            text = action.help % {**vars(action), "prog": ""}
        except (KeyError, TypeError, ValueError):
            text = action.help
        parts.append(_cell(_full_stop(text)))
    kind = VALUE_KINDS.get(getattr(action.type, "__name__", ""))
    if kind and action.nargs != 0:
        parts.append(f"Value: {_cell(kind)}.")
    if action.choices is not None:
        parts.append("One of " + ", ".join(f"`{choice}`" for choice in action.choices) + ".")
    if action.option_strings and action.required:
        parts.append("Required.")
    if isinstance(action, argparse._AppendAction):
        parts.append("Repeatable.")
    return " ".join(parts) or "—"


def _default(action: argparse.Action) -> str:
    """The default when the flag is not given; empty for none, and for switches (off)."""
    default = action.default
    if default is None or default is argparse.SUPPRESS:
        return ""
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        return ""
    if isinstance(default, tuple | list):
        default = ",".join(str(item) for item in default)
    return f"`{default}`"


def _full_stop(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _sentence(text: str) -> str:
    text = text.strip()
    return _full_stop(text[0].upper() + text[1:]) if text else text


def _text(text: str) -> str:
    """Plain text from a help string as Markdown: code spans kept, everything else escaped so
    that `<dataset>`, `*`, `_` or `[search]` in a help string shows as written."""
    out = []
    for piece in re.split(r"(`[^`]*`)", text):
        if len(piece) > 1 and piece.startswith("`") and piece.endswith("`"):
            out.append(piece)
        else:
            out.append(re.sub(r"([\\*_\[\]])", r"\\\1", html.escape(piece, quote=False)))
    return "".join(out)


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped."""
    return _text(" ".join(text.split())).replace("|", "\\|")


def _slug(title: str) -> str:
    """The anchor Python-Markdown's toc gives a heading (lower case, words joined by '-');
    the strict build checks every link made with it."""
    slug = re.sub(r"[^\w\s-]", "", title).strip().lower()
    return re.sub(r"[-\s]+", "-", slug)
