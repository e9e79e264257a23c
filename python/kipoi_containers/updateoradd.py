"""``python -m kipoi_containers.updateoradd``: sync the containers with the model zoo.

Finds which model groups changed since the zoo commit in ``kipoi-model-repo-hash``; for each,
rebuilds, tests and pushes its Docker images (or adds a new group, trying the shared images
first), converts the slim image to a SIF, tests and publishes it on Zenodo, rewrites the
index files, writes them to branch ``update-json`` of the zoo (a pull request on GitHub) and
only then moves the hash. Every completed step is journaled (``--journal``): a killed run,
re-run, resumes where it stopped. ``--dry-run`` prints the plan and touches nothing.

Examples::

    python -m kipoi_containers.updateoradd --dry-run --zoo /path/to/models
    python -m kipoi_containers.updateoradd --zoo github:kipoi/models
    python -m kipoi_containers.updateoradd --zoo /path/to/models --only DeepMEL --no-push

Exit status: 0 when everything succeeded or there was nothing to do, 1 when a model group
failed (or the sync could not run), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import _cli, _engine

# Upstream's constants, with upstream's values (computed from the working directory at
# import time, as upstream's suites expect: ``populate_json(DOCKER_TO_MODEL_JSON)`` reads
# ``./container-info/docker-to-model.json``). The two names without a directory are files
# of the zoo repository's ``shared/containers/``.
CONTAINER_PREFIX = Path.cwd() / "container-info"
WORKFLOW_PREFIX = Path.cwd() / ".github/workflows"
MODEL_GROUP_TO_DOCKER_JSON = "model-to-docker.json"
DOCKER_TO_MODEL_JSON = CONTAINER_PREFIX / "docker-to-model.json"
MODEL_GROUP_TO_SINGULARITY_JSON = "model-to-singularity.json"
TEST_IMAGES_WORKFLOW = WORKFLOW_PREFIX / "test-images.yml"
RELEASE_WORKFLOW = WORKFLOW_PREFIX / "release-workflow.yml"

__all__ = [
    "CONTAINER_PREFIX",
    "DOCKER_TO_MODEL_JSON",
    "MODEL_GROUP_TO_DOCKER_JSON",
    "MODEL_GROUP_TO_SINGULARITY_JSON",
    "RELEASE_WORKFLOW",
    "TEST_IMAGES_WORKFLOW",
    "WORKFLOW_PREFIX",
    "ModelSyncer",
    "build_parser",
    "main",
]


class ModelSyncer:
    """Upstream's entry point: ``ModelSyncer(github_obj).sync()``.

    ``github_obj`` (upstream's logged-in PyGithub ``Github``) is accepted and not used for
    requests: the engine reads the token from ``GITHUB_PAT``/``GITHUB_TOKEN`` and the zoo from
    ``zoo`` (default ``$KIPOI_MODEL_REPO``, else ``github:kipoi/models``). Keyword arguments
    are those of :func:`kipoi_containers._engine.sync`.
    """

    def __init__(self, github_obj: Any = None, **options: Any) -> None:
        self.github_obj = github_obj
        self.options = options
        self.report: _engine.SyncReport | None = None

    def sync(self) -> _engine.SyncReport:
        """Run the sync; returns its report (``report.to_table()`` is the summary)."""
        self.report = _engine.sync(**self.options)
        return self.report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kipoi_containers.updateoradd",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=_cli.SECRETS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    _cli.add_options(parser, "zoo")
    add(
        "--from",
        dest="from_commit",
        metavar="SHA",
        help="zoo commit the index reflects (default: the content of kipoi-model-repo-hash)",
    )
    add("--to", metavar="REV", help="zoo revision to sync to (default: the default branch's head)")
    _cli.add_options(
        parser,
        "container_info",
        "hash_file",
        "registry",
        "base_image",
        "templates",
        "zenodo_url",
        "github_api_url",
        templates="a directory with Dockerfile.template and Dockerfile-slim.template (default: the packaged ones)",
    )
    add(
        "--only",
        metavar="GROUP",
        action="append",
        default=[],
        help="only this model group or key (repeatable); the hash does not move",
    )
    _cli.add_options(
        parser,
        *_cli.RUN_OPTIONS,
        journal="where completed steps are recorded for a re-run (default: ./.kipoi-sync)",
        dry_run="print the plan (what changed and what a sync would do) and touch nothing",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _cli.configure_logging(args.verbose)
    common = {
        "zoo": args.zoo,
        "from_commit": args.from_commit,
        "to": args.to,
        "container_info": args.container_info,
        "hash_file": args.hash_file,
        "github_api_url": args.github_api_url,
        "only": args.only,
    }

    def work() -> int:
        if args.dry_run:
            the_plan = _engine.sync_plan(**common)
            _cli.emit(the_plan.to_dict(), the_plan.to_table(), args.json)
            return 0
        report = _engine.sync(
            **common,
            registry=args.registry,
            base_image=args.base_image,
            templates=args.templates,
            zenodo_url=args.zenodo_url,
            push=not args.no_push,
            concurrency=args.concurrency,
            journal=args.journal,
            restart=args.restart,
            test_zoo=args.test_zoo,
        )
        return _cli.emit_report(report, args.json)

    return _cli.run_command(work)


if __name__ == "__main__":
    sys.exit(main())
