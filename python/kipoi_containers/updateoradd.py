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
import json
import logging
import sys
from pathlib import Path
from typing import Any

from . import _engine
from .errors import KipoiContainersError
from .helper import logger

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
        epilog="Secrets come from the environment only: DOCKER_USERNAME/DOCKER_PASSWORD, "
        "ZENODO_ACCESS_TOKEN, GITHUB_PAT or GITHUB_TOKEN.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--zoo",
        help="model zoo: a local git checkout or github:OWNER/REPO"
        " (default: $KIPOI_MODEL_REPO, else github:kipoi/models)",
    )
    add(
        "--from",
        dest="from_commit",
        metavar="SHA",
        help="zoo commit the index reflects (default: the content of kipoi-model-repo-hash)",
    )
    add("--to", metavar="REV", help="zoo revision to sync to (default: the default branch's head)")
    add(
        "--container-info",
        metavar="DIR",
        help="the three index files (default: $KIPOI_CONTAINER_INFO, else ./container-info)",
    )
    add(
        "--hash-file",
        metavar="FILE",
        help="kipoi-model-repo-hash (default: $KIPOI_MODEL_REPO_HASH, else ./kipoi-model-repo-hash)",
    )
    add(
        "--registry",
        metavar="REPO",
        help="where images are pushed (default: $KIPOI_DOCKER_REPO, else kipoi/kipoi-docker);"
        " index entries keep kipoi/kipoi-docker:",
    )
    add(
        "--base-image",
        metavar="IMAGE",
        help="base of own images (default: $KIPOI_BASE_IMAGE, else kipoi/kipoi-docker:kipoi-base-env)",
    )
    add(
        "--templates",
        metavar="DIR",
        help="a directory with Dockerfile.template and Dockerfile-slim.template (default: the packaged ones)",
    )
    add("--zenodo-url", metavar="URL", help="Zenodo (default: $ZENODO_URL, else https://zenodo.org)")
    add(
        "--github-api-url",
        metavar="URL",
        help="GitHub API base (default: $GITHUB_API_URL, else https://api.github.com)",
    )
    add(
        "--only",
        metavar="GROUP",
        action="append",
        default=[],
        help="only this model group or key (repeatable); the hash does not move",
    )
    add("--no-push", action="store_true", help="build and test only: push nothing, publish nothing, record nothing")
    add(
        "--concurrency",
        metavar="N",
        type=int,
        help="units, and model tests within one, run at once (default: the number of cores)",
    )
    add("--journal", metavar="DIR", help="where completed steps are recorded for a re-run (default: ./.kipoi-sync)")
    add(
        "--restart",
        action="store_true",
        help="discard the journal's recorded steps first (a failed write-back to the zoo it holds is kept and done)",
    )
    add(
        "--test-zoo",
        metavar="DIR",
        help="zoo checkout model tests run against (default: the synced commit of a local zoo, else --source=kipoi)",
    )
    add(
        "--dry-run",
        action="store_true",
        help="print the plan (what changed and what a sync would do) and touch nothing",
    )
    add("--json", action="store_true", help="print the plan or the summary as JSON")
    add("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _configure_logging(verbose: bool) -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    common = {
        "zoo": args.zoo,
        "from_commit": args.from_commit,
        "to": args.to,
        "container_info": args.container_info,
        "hash_file": args.hash_file,
        "github_api_url": args.github_api_url,
        "only": args.only,
    }
    try:
        if args.dry_run:
            the_plan = _engine.sync_plan(**common)
            print(
                json.dumps(the_plan.to_dict(), indent=2) if args.json else the_plan.to_table(),
                end="\n" if args.json else "",
            )
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
    except KeyboardInterrupt:
        print("interrupted: completed steps are journaled; run again to resume", file=sys.stderr)
        return 130
    except (KipoiContainersError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_table(), end="\n" if args.json else "")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
