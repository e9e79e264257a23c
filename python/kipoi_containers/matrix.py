"""``python -m kipoi_containers matrix``: a GitHub Actions matrix computed from the index.

    python -m kipoi_containers matrix --kind test|release|singularity [--container-info DIR]
        [--level N] [--max-level N]

Prints one line of JSON, ``{"include": [...]}``, for ``strategy.matrix: ${{ fromJSON(...) }}``
(the engine computes it: ``src/recipes/matrix.rs``), so adding a model group edits no workflow:

- ``test``: one entry per image of ``docker-to-model.json``: ``image``, ``tag``, ``kind``
  (``group`` or ``shared-env``), ``slim``, ``sif`` and ``models`` (one per model group for a
  shared image);
- ``release``: the base image first, then every image of ``docker-to-model.json`` in
  dependency order, each with ``depends_on`` (the entries it is built from) and ``level``;
  ``--level N`` keeps one level, ``--max-level N`` exits 1 naming any entry deeper than N
  (the release workflow runs levels 0 and 1);
- ``singularity``: the slim image of every image and its SIF name.
"""

from __future__ import annotations

import argparse
import sys

from . import _engine
from .errors import KipoiContainersError

__all__ = ["KINDS", "build_parser", "main"]

PROG = "python -m kipoi_containers matrix"
KINDS = ("test", "release", "singularity")


def _level(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("--kind", required=True, choices=KINDS, help="which matrix")
    add(
        "--container-info",
        metavar="DIR",
        help="the index files (default: $KIPOI_CONTAINER_INFO, else ./container-info)",
    )
    add("--level", metavar="N", type=_level, help="release: only the entries of level N (0: the base)")
    add("--max-level", metavar="N", type=_level, help="release: exit 1 naming any entry deeper than N")
    add("--templates", metavar="DIR", help="release: Dockerfile templates replacing the packaged ones")
    add("--envfiles", metavar="DIR", help="release: environment files replacing the packaged ones")
    add(
        "--base-image",
        metavar="IMAGE",
        help="release: the base image (default: $KIPOI_BASE_IMAGE, else the packaged name)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the matrix; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.kind != "release" and (args.level is not None or args.max_level is not None):
        parser.error("--level and --max-level apply to --kind release only")
    try:
        text = _engine.recipe_matrix(
            args.kind,
            container_info=args.container_info,
            level=args.level,
            max_level=args.max_level,
            template_dir=args.templates,
            envfile_dir=args.envfiles,
            base_image=args.base_image,
        )
    except (KipoiContainersError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
