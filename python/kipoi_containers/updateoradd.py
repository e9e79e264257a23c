"""``python -m kipoi_containers.updateoradd``: sync the containers with the model zoo.

Finds which model groups changed since the zoo commit in ``kipoi-model-repo-hash`` and
decides what to do for each (rebuild and retest its image, retest it in its shared image,
add a new group, drop a deleted one). ``--dry-run`` prints that plan, with reasons, and
touches nothing.

Examples::

    python -m kipoi_containers.updateoradd --dry-run --zoo /path/to/models
    python -m kipoi_containers.updateoradd --dry-run --zoo github:kipoi/models --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from .errors import KipoiContainersError
from .helper import logger
from .planning import default_zoo, plan

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
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kipoi_containers.updateoradd",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (what changed and what a sync would do) and touch nothing",
    )
    parser.add_argument(
        "--zoo",
        default=None,
        help="model zoo: a local git checkout or github:OWNER/REPO "
        "(default: $KIPOI_MODEL_REPO, else github:kipoi/models)",
    )
    parser.add_argument(
        "--from",
        dest="from_commit",
        default=None,
        metavar="SHA",
        help="zoo commit the index reflects (default: the content of kipoi-model-repo-hash)",
    )
    parser.add_argument(
        "--to", default=None, metavar="REV", help="zoo revision to sync to (default: the branch head)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--container-info",
        default=None,
        metavar="DIR",
        help="directory with the three index files (default: $KIPOI_CONTAINER_INFO, else ./container-info)",
    )
    parser.add_argument(
        "--hash-file",
        default=None,
        metavar="FILE",
        help="the kipoi-model-repo-hash file (default: $KIPOI_MODEL_REPO_HASH, else ./kipoi-model-repo-hash)",
    )
    parser.add_argument(
        "--github-api-url",
        default=None,
        metavar="URL",
        help="GitHub API base (default: $GITHUB_API_URL, else https://api.github.com)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _configure_logging(verbose: bool) -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        the_plan = plan(
            zoo=args.zoo,
            from_commit=args.from_commit,
            to=args.to,
            container_info=args.container_info,
            hash_file=args.hash_file,
            github_api_url=args.github_api_url,
        )
    except (KipoiContainersError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(the_plan.to_dict(), indent=2))
    else:
        print(the_plan.to_table(), end="")
    if not args.dry_run and not the_plan.is_empty():
        print(
            "error: executing the plan (build, test, push, publish) is not available in this "
            "version; run with --dry-run to see the plan",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
