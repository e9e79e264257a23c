"""``python -m kipoi_containers recipes``: the recipe of every image.

Every image of ``docker-to-model.json``, its ``-slim`` image and the base image
``kipoi/kipoi-docker:kipoi-base-env`` have a recipe, chosen by the index (the engine's
``src/recipes``): a shared image (keys spanning several model groups) is built from its
environment file ``dockerfiles/envfiles/<tag>.yml``, the base from ``envfiles/kipoi-env.yml``,
any other image from the group templates.

    python -m kipoi_containers recipes check [--container-info DIR] [--write DIR]
    python -m kipoi_containers recipes show IMAGE [--container-info DIR]

``check`` prints one line per image (its recipe file, the recipe hash, what it serves) and
exits 1 naming every image without a recipe and every environment file that serves no image.
``--write DIR`` then writes every recipe there (``DIR/Dockerfile.<tag>[-slim]`` and
``DIR/envfiles/*.yml``): ``recipes check --write tests/golden/recipes`` regenerates the
golden files.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import _engine
from .errors import KipoiContainersError

__all__ = ["build_parser", "main"]

PROG = "python -m kipoi_containers recipes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add(
        "--container-info",
        metavar="DIR",
        help="the index files (default: $KIPOI_CONTAINER_INFO, else ./container-info)",
    )
    add(
        "--templates", metavar="DIR", help="Dockerfile templates replacing the packaged ones (group templates required)"
    )
    add("--envfiles", metavar="DIR", help="environment files replacing the packaged ones (every *.yml of DIR)")
    add("--base-image", metavar="IMAGE", help="the base image (default: $KIPOI_BASE_IMAGE, else the packaged name)")
    add(
        "--build-image",
        metavar="IMAGE",
        help="the image the base recipe starts from (default: $KIPOI_BUILD_IMAGE, else continuumio/miniconda3:latest)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        parents=[common],
        help="one line per image; exit 1 naming images without a recipe and unused environment files",
    )
    check.add_argument("--write", metavar="DIR", help="then write every recipe (and environment file) into DIR")
    show = commands.add_parser("show", parents=[common], help="print the recipe of one image")
    show.add_argument("image", metavar="IMAGE", help="an image of the index (full or -slim), or the base image")
    show.add_argument("--model-group", metavar="GROUP", help="an image new to the index: the group to render it for")
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "container_info": args.container_info,
        "template_dir": args.templates,
        "envfile_dir": args.envfiles,
        "base_image": args.base_image,
        "build_image": args.build_image,
    }


def _serves(line: _engine.RecipeCheckLine) -> str:
    if line.kind == "base":
        return f"base of {len(line.dependents)} images"
    keys = ", ".join(line.keys) if line.keys else "-"
    noun = "model" if line.models == 1 else "models"
    return f"{line.models} {noun} of {keys}"


def _check(args: argparse.Namespace) -> int:
    report = _engine.check_recipes(**_options(args))
    width = max((len(line.file_name) for line in report.lines), default=0)
    for line in report.lines:
        what = line.kind if line.subject is None else f"{line.kind} {line.subject}"
        print(f"{line.file_name:<{width}}  {line.hash}  {what}: {_serves(line)}")
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    if report.problems:
        suffix = ": nothing written" if args.write else ""
        print(f"{len(report.problems)} problem(s){suffix}", file=sys.stderr)
        return 1
    print(f"{len(report.lines)} images, each with a recipe")
    if args.write:
        written = _engine.write_recipes(os.fspath(args.write), **_options(args))
        print(f"wrote {len(written)} files to {args.write}")
    return 0


def _show(args: argparse.Namespace) -> int:
    recipe = _engine.recipe_for_image(args.image, model_group=args.model_group, **_options(args))
    print(recipe.text, end="" if recipe.text.endswith("\n") else "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 problems or errors, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        return _check(args) if args.command == "check" else _show(args)
    except (KipoiContainersError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
