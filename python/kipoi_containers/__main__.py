"""``python -m kipoi_containers``: the command line.

Without arguments it lists its commands. Each command is one entry of :data:`COMMANDS`:
a summary and the function that runs it (``argv -> exit code``), given directly or as
``"module:function"`` (imported only when that command runs). Adding a command is one line.

Errors print ``error: ...`` on stderr and exit 1 (never a traceback); usage errors exit 2;
Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, NoReturn

Main = Callable[[list[str]], int]

PROG = "python -m kipoi_containers"


@dataclass(frozen=True)
class Command:
    """One command: what it does, and ``argv -> exit code`` (or ``"module:function"``)."""

    summary: str
    target: Main | str

    def load(self) -> Main:
        if callable(self.target):
            return self.target
        module, _, function = self.target.partition(":")
        main: Main = getattr(importlib.import_module(module), function or "main")
        return main


# ----------------------------------------------------------------------------- sif


def _size(n: int) -> str:
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"


def _time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _print_inspection(info: dict[str, Any]) -> None:
    """The descriptor table (like ``apptainer sif list``), then the labels."""
    objects = info["objects"]
    print(f"SIF:         {info['path']}")
    print(f"UUID:        {info['uuid']}")
    print(f"arch:        {info['arch']}")
    print(f"created:     {_time(info['ctime'])}")
    print(f"size:        {info['size']} bytes ({_size(info['size'])})")
    print(f"descriptors: {len(objects)} used of {info['descriptors_total']}")
    print()
    rows = [("ID", "TYPE", "OFFSET", "SIZE", "GROUP", "LINK", "NAME", "PARTITION (fstype/parttype/arch)")]
    for o in objects:
        partition = f"{o['fstype']}/{o['parttype']}/{o['arch']}" if o["fstype"] is not None else ""
        rows.append(
            (
                str(o["id"]),
                o["type"],
                str(o["offset"]),
                str(o["size"]),
                str(o["group"]) if o["group"] is not None else "NONE",
                o["link"] or "NONE",
                o["name"],
                partition,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()
    labels: dict[str, str] = info["labels"]
    if labels:
        print("labels:")
        width = max(len(k) for k in labels)
        for key in sorted(labels):
            print(f"  {key.ljust(width)}  {labels[key]}")
    else:
        print("labels: (none: the SIF has no inspect-metadata.json)")


def _bind(text: str) -> tuple:
    source, sep, dest = text.partition(":")
    if not source:
        raise argparse.ArgumentTypeError(f"`{text}`: expected SRC or SRC:DEST")
    return (source, dest if sep else source)


def _env(text: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"`{text}`: expected NAME=VALUE")
    return (name, value)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be more than 0")
    return value


def _sif_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} sif",
        description="Singularity images (SIF) without apptainer: inspect, verify, run, convert.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-vv: debug)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser(
        "inspect",
        help="the descriptor table and labels of a SIF",
        description=(
            "Print the header, the descriptor table (id, type, offset, size, name, partition "
            "fstype/parttype/arch) and the labels (source image and digest, model group, zoo commit)."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print everything as JSON")

    p = actions.add_parser(
        "verify",
        help="check a SIF's structure (exit 0 valid, 1 not)",
        description=(
            "Check the header, descriptors and partition layout; exit 0 when valid, else print the problem and exit 1."
        ),
    )
    p.add_argument("file", metavar="FILE")

    p = actions.add_parser(
        "run",
        help="run a command inside a SIF (exit code of the command)",
        usage=f"{PROG} sif run [options] FILE -- CMD [ARG ...]",
        description=(
            "Run CMD inside the SIF with apptainer or singularity when on PATH, else with "
            "squashfuse + bwrap (read-only root, private /tmp and $HOME, the image's "
            "environment). Exits with the command's exit code (124 when killed for --timeout)."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="after `--`: the command and its arguments")
    p.add_argument(
        "--bind",
        type=_bind,
        action="append",
        default=[],
        metavar="SRC[:DEST]",
        help="bind a host path read-only (DEST under /tmp or an existing directory of the image)",
    )
    p.add_argument("--no-network", action="store_true", help="no network inside (only loopback)")
    p.add_argument("--pwd", metavar="DIR", help="working directory inside (default: $HOME)")
    p.add_argument("--env", type=_env, action="append", default=[], metavar="NAME=VALUE", help="set a variable inside")
    p.add_argument("--timeout", type=_positive, metavar="SECONDS", help="kill the command after this long")
    p.add_argument(
        "--runner",
        choices=("auto", "apptainer", "singularity", "bwrap"),
        default=None,
        help="how to run it (auto: the first available of apptainer, singularity, bwrap; "
        "default: $KIPOI_SIF_RUNNER, else auto)",
    )

    p = actions.add_parser(
        "convert",
        help="convert a local Docker image to a SIF",
        description=(
            "Convert IMAGE from the local Docker Engine into the SIF OUT (no apptainer, no "
            "registry); the same image gives the same bytes."
        ),
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--model-group", metavar="G", help="record the Kipoi model group in the labels")
    p.add_argument("--zoo-commit", metavar="C", help="record the zoo commit in the labels")
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return parser


def sif_main(argv: list[str]) -> int:
    """``sif inspect|verify|run|convert``."""
    parser = _sif_parser()
    command: list[str] | None = None
    if "--" in argv:  # everything after the first `--` is the command of `run`
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if args.action == "run":
        command = [*args.command, *(command or [])]
        if not command:
            _subparser(parser, "run").error("give the command after `--`: sif run FILE -- CMD [ARG ...]")
    elif command is not None:
        _subparser(parser, args.action).error(f"unexpected arguments after `--`: {' '.join(command)}")
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    from . import sif

    if args.action == "inspect":
        info = sif.inspect(args.file)
        if args.json:
            print(json.dumps(info, indent=2, sort_keys=True, default=str))
        else:
            _print_inspection(info)
        return 0
    if args.action == "verify":
        sif.verify(args.file)
        print(f"ok: `{args.file}` is a valid SIF")
        return 0
    if args.action == "run":
        result = sif.run(
            args.file,
            command or [],
            binds=args.bind,
            network=not args.no_network,
            workdir=args.pwd,
            env=dict(args.env),
            timeout=args.timeout,
            capture=False,
            runner=args.runner,
        )
        if result.timed_out:
            print(
                f"error: `{command[0] if command else ''}` exceeded {args.timeout:g}s and was killed", file=sys.stderr
            )
            return 124
        return result.exit_code if 0 <= result.exit_code <= 255 else 1
    report = sif.convert(args.image, args.out, model_group=args.model_group, zoo_commit=args.zoo_commit)
    print(
        f"wrote `{args.out}` from `{report['source_image']}` ({report['source_digest']}): "
        f"{report['size']} bytes, md5 {report['md5']}, {report['seconds']:.1f}s"
    )
    return 0


# ----------------------------------------------------------------------------- the table

#: The commands, one line each: name -> Command(summary, ``argv -> exit code``).
COMMANDS: dict[str, Command] = {
    "updateoradd": Command(
        "sync with the model zoo: build, test, push, convert, publish, write back"
        " (also `python -m kipoi_containers.updateoradd`)",
        "kipoi_containers.updateoradd:main",
    ),
    "sif": Command("inspect, verify, run and convert Singularity images (SIF) without apptainer", sif_main),
    "release": Command(
        "rebuild every image in dependency order, publish, write back (or one shard's fragment)",
        "kipoi_containers.release:main",
    ),
    "merge-results": Command(
        "apply the result fragments of a sharded release to the index and write it back",
        "kipoi_containers.release:merge_main",
    ),
    "recipes": Command("check, show and write the recipe (Dockerfile) of every image", "kipoi_containers.recipes:main"),
    "matrix": Command("CI job matrices from the index (test, release, singularity)", "kipoi_containers.matrix:main"),
}


def _listing() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} COMMAND [ARG ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", f"`{PROG} COMMAND --help` describes a command."]
    return "\n".join(lines)


class _ClosedPipeGuard:
    """Standard output that ends the command quietly (status 141, as a shell tool killed by
    SIGPIPE) when its reader goes away (``... | head``), instead of an error message."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> NoReturn:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        raise SystemExit(141)

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._closed()

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and not isinstance(sys.stdout, _ClosedPipeGuard):
        sys.stdout = _ClosedPipeGuard(sys.stdout)  # type: ignore[assignment]
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_listing())
        return 0
    if args[0] == "--version":
        from . import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"{_listing()}\n\nerror: unknown command `{args[0]}`", file=sys.stderr)
        return 2
    try:
        return command.load()(args[1:])
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as error:
        text = str(error) or type(error).__name__
        if not isinstance(error, (OSError, ValueError, LookupError)) and not type(error).__module__.startswith(
            "kipoi_containers"
        ):
            text = f"{type(error).__name__}: {text}"
        print(f"error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
