"""What the long-running commands (``updateoradd``, ``release``, ``merge-results``) share:
their common options (one definition and help text each), logging set-up, the exit-status
rule for errors and Ctrl-C, and how a plan or a summary is printed.

Exit status: 0 done, 1 a failed unit or an error (printed as ``error: ...``), 2 usage
(argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from . import _engine
from .errors import KipoiContainersError
from .helper import logger

SECRETS_EPILOG = (
    "Secrets come from the environment only: DOCKER_USERNAME/DOCKER_PASSWORD, ZENODO_ACCESS_TOKEN, "
    "GITHUB_PAT or GITHUB_TOKEN (the write-back to a GitHub zoo)."
)
RESUME_HINT = "interrupted: completed steps are journaled; run again to resume"

# One definition per option: (flags, argparse keywords). A command may replace the help text.
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "zoo": (
        ("--zoo",),
        {
            "help": "model zoo: a local git checkout or github:OWNER/REPO (default: $KIPOI_MODEL_REPO, "
            "else github:kipoi/models)"
        },
    ),
    "container_info": (
        ("--container-info",),
        {"metavar": "DIR", "help": "the three index files (default: $KIPOI_CONTAINER_INFO, else ./container-info)"},
    ),
    "hash_file": (
        ("--hash-file",),
        {
            "metavar": "FILE",
            "help": "kipoi-model-repo-hash (default: $KIPOI_MODEL_REPO_HASH, else ./kipoi-model-repo-hash)",
        },
    ),
    "registry": (
        ("--registry",),
        {
            "metavar": "REPO",
            "help": "where images are pushed (default: $KIPOI_DOCKER_REPO, else kipoi/kipoi-docker); "
            "index entries keep kipoi/kipoi-docker:",
        },
    ),
    "base_image": (
        ("--base-image",),
        {
            "metavar": "IMAGE",
            "help": "base of own images (default: $KIPOI_BASE_IMAGE, else kipoi/kipoi-docker:kipoi-base-env)",
        },
    ),
    "templates": (
        ("--templates",),
        {"metavar": "DIR", "help": "Dockerfile templates replacing the packaged ones"},
    ),
    "zenodo_url": (
        ("--zenodo-url",),
        {"metavar": "URL", "help": "Zenodo (default: $ZENODO_URL, else https://zenodo.org)"},
    ),
    "github_api_url": (
        ("--github-api-url",),
        {"metavar": "URL", "help": "GitHub API base (default: $GITHUB_API_URL, else https://api.github.com)"},
    ),
    "no_push": (
        ("--no-push",),
        {"action": "store_true", "help": "build and test only: push nothing, publish nothing, record nothing"},
    ),
    "concurrency": (
        ("--concurrency",),
        {
            "metavar": "N",
            "type": int,
            "help": "units, and model tests within one, run at once (default: the number of cores)",
        },
    ),
    "journal": (
        ("--journal",),
        {"metavar": "DIR", "help": "where completed steps are recorded for a re-run"},
    ),
    "restart": (
        ("--restart",),
        {
            "action": "store_true",
            "help": "discard the journal's recorded steps first (a failed write-back to the zoo it holds is kept "
            "and done)",
        },
    ),
    "test_zoo": (
        ("--test-zoo",),
        {
            "metavar": "DIR",
            "help": "zoo checkout model tests run against (default: the synced commit of a local zoo, "
            "else --source=kipoi)",
        },
    ),
    "dry_run": (
        ("--dry-run",),
        {"action": "store_true", "help": "print what would be done and touch nothing"},
    ),
    "json": (("--json",), {"action": "store_true", "help": "print the plan or the summary as JSON"}),
    "verbose": (("-v", "--verbose"), {"action": "store_true", "help": "debug logging"}),
}


#: The options of a run that builds and publishes (the sync's and the release's), in order.
RUN_OPTIONS = ("no_push", "concurrency", "journal", "restart", "test_zoo", "dry_run", "json", "verbose")


def add_options(parser: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the shared options ``names`` (keys of the table above, in that order); a keyword
    ``name="text"`` replaces that option's help text."""
    for name in names:
        flags, keywords = _OPTIONS[name]
        parser.add_argument(*flags, **{**keywords, **({"help": helps[name]} if name in helps else {})})


def configure_logging(verbose: bool) -> None:
    """Engine and package logs (logger ``kipoi_containers``) on stderr; ``-v`` adds debug."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def run_command(work: Callable[[], int], interrupted: str = RESUME_HINT) -> int:
    """Run a command's work; an error prints ``error: ...`` (no traceback) and gives 1, Ctrl-C
    prints ``interrupted`` and gives 130. A closed standard output is not an error of ours: it
    goes on to the caller (``python -m kipoi_containers`` ends quietly)."""
    try:
        return work()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except (KipoiContainersError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def emit(value: Any, text: str, as_json: bool) -> None:
    """Print ``value`` as indented JSON, or ``text`` (already ending in a newline) as it is."""
    print(json.dumps(value, indent=2) if as_json else text, end="\n" if as_json else "")


def emit_report(report: _engine.SyncReport, as_json: bool) -> int:
    """Print a sync/release/merge summary; the exit status is 1 when a unit failed."""
    emit(report.to_dict(), report.to_table(), as_json)
    return 1 if report.failed else 0
