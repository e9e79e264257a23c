"""Benchmark: 8 real `kipoi test` runs (tiny models of tests/data/zoo, offline, each in
its own container) sequentially vs. with concurrency 2. Prints both wall times and their
ratio (target <= 0.6). Not a test.

    python bench/model_tests_concurrency.py [--rounds 2]

Needs the Docker Engine; builds the test base image (scripts/base-image.sh, cached by
recipe) and a test image from tests/data/dockerfiles when missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kipoi_containers import _engine  # noqa: E402

IMAGE = "kipoi/kipoi-docker:bench-tinyshared"
MODELS = [
    "TinyLinear",
    "TinyMulti/a",
    "TinyMulti/b",
    "TinyMulti/c",
    "TinySub/one",
    "TinySub/two",
    "TinyLinear",
    "TinyMulti/a",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = subprocess.run(
        ["bash", str(REPO / "scripts" / "base-image.sh")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _engine.render_dockerfile(
            "TinyLinear",
            "bench-tinyshared",
            output_dir=tmp,
            template_dir=REPO / "tests" / "data" / "dockerfiles",
            base_image=base,
        )
        _engine.build_image(path, IMAGE)
        zoo = Path(tmp) / "zoo"
        shutil.copytree(REPO / "tests" / "data" / "zoo", zoo)
        timings = {1: [], 2: []}
        for _ in range(args.rounds):
            for concurrency in (1, 2):
                t = time.perf_counter()
                results = _engine.test_models(IMAGE, MODELS, zoo_dir=zoo, concurrency=concurrency)
                timings[concurrency].append(time.perf_counter() - t)
                assert all(r.passed for r in results), [r for r in results if not r.passed]
    seq, par = min(timings[1]), min(timings[2])
    print(f"{len(MODELS)} model tests: sequential {seq:.1f} s, concurrency 2 {par:.1f} s (best of {args.rounds})")
    print(f"ratio concurrent/sequential = {par / seq:.2f} (target <= 0.6: {'met' if par / seq <= 0.6 else 'MISSED'})")


if __name__ == "__main__":
    main()
