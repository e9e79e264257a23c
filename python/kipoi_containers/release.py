"""``python -m kipoi_containers release``: rebuild every image after a kipoi or base-image release.

Every image of the index and the base image are rebuilt from their recipes (``recipes
check`` lists them) in dependency order, read from the recipes' ``FROM`` lines: the base,
then the shared environments and the own images, each full image before its ``-slim``.
Each image's models are tested (one per group in a shared image), the images pushed, the
slim image converted to a SIF, tested, and published as a new Zenodo version where its md5
changed; the index is updated and written back to the zoo like the sync's. An image whose
registry copy has the same recipe and was built from the same parents is not rebuilt, so a
second release with nothing changed publishes nothing. Completed steps are journaled
(``--journal``, default ``./.kipoi-release``): a killed release, re-run, resumes.

On more than one machine (the ``release`` GitHub Actions workflow), each job releases one
image and writes a result fragment instead of the index::

    python -m kipoi_containers release --only kipoi/kipoi-docker:deepmel --result-fragment frag/deepmel.json
    python -m kipoi_containers merge-results frag/

``merge-results`` applies every fragment to the index in a deterministic order and writes it
back to the zoo; the images of a failed job keep their entries.

Exit status: 0 when every image succeeded, 1 when one failed (or the release could not run),
2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from . import _cli, _engine

__all__ = ["build_merge_parser", "build_parser", "main", "merge_main"]

_ZOO_HELP = (
    "model zoo the index is written back to (and, when it is a local checkout, the zoo model tests read "
    "at the stored commit); default: $KIPOI_MODEL_REPO, else github:kipoi/models"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kipoi_containers release",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=_cli.SECRETS_EPILOG,
    )
    add = parser.add_argument
    _cli.add_options(
        parser,
        "zoo",
        "container_info",
        "github_api_url",
        "hash_file",
        "registry",
        "base_image",
        zoo=_ZOO_HELP,
        hash_file="kipoi-model-repo-hash: the zoo commit the index reflects, recorded in image labels "
        "(default: $KIPOI_MODEL_REPO_HASH, else ./kipoi-model-repo-hash)",
        registry="where images are pushed and parents pulled from (default: $KIPOI_DOCKER_REPO, "
        "else kipoi/kipoi-docker)",
        base_image="the base image's name (default: $KIPOI_BASE_IMAGE, else kipoi/kipoi-docker:kipoi-base-env)",
    )
    add(
        "--build-image",
        metavar="IMAGE",
        help="the image the base recipe starts from (default: $KIPOI_BUILD_IMAGE, else "
        "continuumio/miniconda3:latest)",
    )
    _cli.add_options(parser, "templates")
    add("--envfiles", metavar="DIR", help="environment files replacing the packaged ones")
    _cli.add_options(parser, "zenodo_url")
    add(
        "--only",
        metavar="IMAGE",
        action="append",
        default=[],
        help="only this image (full or -slim name; repeatable); its parents are taken from the registry",
    )
    add(
        "--result-fragment",
        metavar="FILE",
        help="write this shard's results to FILE (for merge-results) instead of the index",
    )
    _cli.add_options(
        parser,
        *_cli.RUN_OPTIONS,
        concurrency="images of one level, and model tests, run at once",
        journal="where completed steps are recorded (default: ./.kipoi-release)",
        test_zoo="zoo checkout model tests run against (default: see --zoo)",
        dry_run="print the images, level by level, and touch nothing",
    )
    return parser


def build_merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kipoi_containers merge-results",
        description="Apply the result fragments of a sharded release to the index (in a deterministic "
        "order) and write the index back to the zoo. A failed shard's images keep their entries.",
        epilog=_cli.SECRETS_EPILOG,
    )
    parser.add_argument("directory", metavar="DIR", help="a directory of result fragments (*.json)")
    _cli.add_options(
        parser,
        "zoo",
        "container_info",
        "github_api_url",
        "no_push",
        "json",
        "verbose",
        zoo=_ZOO_HELP,
        no_push="update the local index only: no write-back to the zoo",
        json="print the summary as JSON",
    )
    return parser


def _plan_table(levels: list[list[dict]]) -> str:
    lines = []
    for level in levels:
        lines.append(f"level {level[0]['level']}:")
        for item in level:
            parents = ", ".join(item["parents"] + item["external"]) or "-"
            slim = " (+ slim, SIF)" if item["with_slim"] else ""
            lines.append(f"  {item['image']}{slim}  FROM {parents}; tests {len(item['test_models'])} model(s)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _cli.configure_logging(args.verbose)
    recipes = {
        "container_info": args.container_info,
        "only": args.only,
        "base_image": args.base_image,
        "build_image": args.build_image,
        "templates": args.templates,
        "envfiles": args.envfiles,
    }

    def work() -> int:
        if args.dry_run:
            levels = _engine.release_plan(**recipes)
            _cli.emit(levels, _plan_table(levels), args.json)
            return 0
        report = _engine.release(
            **recipes,
            fragment=args.result_fragment,
            zoo=args.zoo,
            hash_file=args.hash_file,
            registry=args.registry,
            zenodo_url=args.zenodo_url,
            github_api_url=args.github_api_url,
            push=not args.no_push,
            concurrency=args.concurrency,
            journal=args.journal,
            restart=args.restart,
            test_zoo=args.test_zoo,
        )
        return _cli.emit_report(report, args.json)

    return _cli.run_command(work)


def merge_main(argv: list[str] | None = None) -> int:
    args = build_merge_parser().parse_args(argv)
    _cli.configure_logging(args.verbose)

    def work() -> int:
        report = _engine.merge_results(
            args.directory,
            zoo=args.zoo,
            container_info=args.container_info,
            github_api_url=args.github_api_url,
            push=not args.no_push,
        )
        return _cli.emit_report(report, args.json)

    return _cli.run_command(work, interrupted="interrupted: run merge-results again")


if __name__ == "__main__":
    sys.exit(main())
