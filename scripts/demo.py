"""A real sync on the embedded local default, with nothing from outside this checkout:
``make run-local``.

Starts the local stack the project ships — the real-kipoi base image built locally
(``scripts/base-image.sh``), a registry with htpasswd auth (``scripts/registry.sh``), the
Zenodo emulator (``tests/emulators/zenodo.py``), a demo zoo of tiny real Kipoi model groups
as a local git repository (``tests/data/zoo``) and an empty index — runs
``python -m kipoi_containers.updateoradd`` against it, prints the ``Sync summary`` and the
index diff, and stops what it started. No credentials (generated ones), no Internet.

    python scripts/demo.py [--workdir .local/demo] [--keep]
"""

from __future__ import annotations

import argparse
import difflib
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.demo_stack import DEMO_TEMPLATES, INDEX_FILES, make_demo_zoo, make_empty_index  # noqa: E402
from tests.emulators.zenodo import ZenodoEmulator  # noqa: E402


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_image() -> str:
    say("the real-kipoi base image (scripts/base-image.sh; ~1.5 min the first time, cached after)")
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "base-image.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir", default=".local/demo", help="where the demo's zoo, index, journal and SIFs go (recreated)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the registry data and the work directory afterwards")
    args = parser.parse_args(argv)
    work = Path(args.workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    work.chmod(0o755)

    image = base_image()
    zoo, base, head = make_demo_zoo(work / "zoo")
    container_info = work / "container-info"
    hash_file = work / "kipoi-model-repo-hash"
    make_empty_index(container_info, hash_file, base)
    before = {name: (container_info / name).read_text() for name in INDEX_FILES}

    user, password, token = "kipoi", secrets.token_urlsafe(18), secrets.token_hex(20)
    registry_env = {
        **os.environ,
        "KIPOI_REGISTRY_DIR": str(work / "registry"),
        "KIPOI_REGISTRY_PORT": str(free_port()),
        "KIPOI_REGISTRY_USER": user,
        "KIPOI_REGISTRY_PASSWORD": password,
    }
    say("a local registry with htpasswd auth (scripts/registry.sh)")
    host = (
        subprocess.run(
            ["bash", str(REPO / "scripts" / "registry.sh"), "start"],
            env=registry_env,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    say("the Zenodo emulator")
    zenodo = ZenodoEmulator(token).start()
    status = 1
    try:
        command = [
            sys.executable,
            "-m",
            "kipoi_containers.updateoradd",
            "--zoo",
            str(zoo.path),
            "--container-info",
            str(container_info),
            "--hash-file",
            str(hash_file),
            "--registry",
            f"{host}/kipoi/kipoi-docker",
            "--base-image",
            image,
            "--templates",
            str(DEMO_TEMPLATES),
            "--zenodo-url",
            zenodo.url,
            "--journal",
            str(work / "journal"),
        ]
        say(f"the sync of the demo zoo ({base[:12]} -> {head[:12]}): " + " ".join(command[1:]))
        env = {**os.environ, "DOCKER_USERNAME": user, "DOCKER_PASSWORD": password, "ZENODO_ACCESS_TOKEN": token}
        env.pop("KIPOI_MODEL_REPO", None)
        status = subprocess.run(command, cwd=work, env=env).returncode
        print()
        print("Index diff:")
        for name in INDEX_FILES:
            after = (container_info / name).read_text()
            sys.stdout.writelines(
                difflib.unified_diff(
                    (before[name] + "\n").splitlines(keepends=True),
                    (after + "\n").splitlines(keepends=True),
                    fromfile=f"a/{name}",
                    tofile=f"b/{name}",
                )
            )
        print(f"\nkipoi-model-repo-hash: {hash_file.read_text().strip()} (zoo head {head})")
        print(f"zoo branch update-json: {zoo.git('log', '--oneline', '-3', 'update-json')}".replace("\n", "; "))
        published = [d for d in zenodo.depositions() if d.get("submitted")]
        print(
            f"Zenodo emulator: {len(published)} published record(s): "
            + ", ".join(f["filename"] for d in published for f in d["files"])
        )
    finally:
        say("stopping what the demo started")
        zenodo.stop()
        subprocess.run(["bash", str(REPO / "scripts" / "registry.sh"), "stop"], env=registry_env, capture_output=True)
        if not args.keep:
            shutil.rmtree(work / "registry", ignore_errors=True)
            shutil.rmtree(work / "journal", ignore_errors=True)
        for tag in ("tinylinear", "tinymulti", "tinysub"):
            subprocess.run(
                ["docker", "rmi", "-f", f"kipoi/kipoi-docker:{tag}", f"kipoi/kipoi-docker:{tag}-slim"],
                capture_output=True,
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
