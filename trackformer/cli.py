"""`trackformer` command line: sub-commands come from plugins (`register_commands`).

Human output goes to stderr, machine output (`--json`) to stdout. Exit status: 0 success, 1 failure,
2 a user mistake (bad config, missing or malformed file), always as one line without a traceback.
"""
import argparse
import shlex
import sys
import warnings
from typing import Dict, List, Optional, Sequence

from . import __version__
from .cpu_memory import tune_cpu_allocator
from .errors import TrackformerError


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"trackformer: warning: {message}", file=sys.stderr)


def _split_plugin_options(argv: List[str]):
    """`-p MODULE` must be known before the parser exists, since plugins add the sub-commands."""
    modules, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "--plugin") and i + 1 < len(argv):
            modules.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):
            modules.append(arg[2:])
        elif arg.startswith("--plugin="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return modules, rest


def reject_flag_spellings(overrides: Sequence[str], flags: Dict[str, str]):
    """`key=value` on the command line is only ever a config key. A command option spelled that way
    (`input=images/`, the old grammar) is a one-line hint naming its flag; `flags` maps the old key to
    the flag. A mapping or list value (`data={name: ...}`) is a config value and passes."""
    for text in overrides:
        key, sep, value = text.partition("=")
        if sep and key.strip() in flags and not value.lstrip().startswith(("{", "[")):
            raise TrackformerError(f"{text!r} is not a config key; "
                                   f"use {flags[key.strip()]} {shlex.quote(value)}")


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is one line too, pointing at the command's help."""

    def error(self, message):
        self.exit(2, f"trackformer: error: {message} (see: {self.prog} --help)\n")


def build_parser(commands) -> argparse.ArgumentParser:
    parser = _Parser(prog="trackformer", description="Transformer detection, tracking "
                                     "and metric learning. Sub-commands come from plugins.")
    parser.add_argument("--version", action="version", version=f"trackformer {__version__}")
    parser.add_argument("-p", "--plugin", action="append", metavar="MODULE",
                        help="load a plugin module (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for entry in sorted(commands, key=lambda e: e.name):
        words = entry.name.split()
        target = sub
        for depth, word in enumerate(words[:-1]):
            group_key = " ".join(words[: depth + 1])
            if group_key not in groups:
                group_parser = target.add_parser(word, help=f"{word} commands")
                groups[group_key] = group_parser.add_subparsers(dest=f"command_{depth + 1}", metavar="COMMAND",
                                                                required=True)
            target = groups[group_key]
        cmd = target.add_parser(words[-1], help=entry.help, description=entry.help)
        add_arguments = entry.extra.get("add_arguments")
        if add_arguments is not None:
            add_arguments(cmd)
        cmd.set_defaults(handler=entry.factory)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    warnings.showwarning = _one_line_warnings
    tune_cpu_allocator()  # before torch is imported: see cpu_memory.py
    argv = list(sys.argv[1:] if argv is None else argv)
    modules, argv = _split_plugin_options(argv)
    try:
        from .plugins import load_plugins

        loaded = load_plugins(modules)
        parser = build_parser(loaded.registries["commands"])
        args, extra = parser.parse_known_args(argv)
        # `key=value` overrides may come after a command's flags too (argparse stops at the first flag)
        stray = [a for a in extra if a.startswith("-") or not isinstance(getattr(args, "overrides", None), list)]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        if extra:
            args.overrides = [*args.overrides, *extra]
        if getattr(args, "handler", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.handler(args) or 0)
    except TrackformerError as error:
        print(f"trackformer: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trackformer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
