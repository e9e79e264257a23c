"""Docker image -> SIF: the native converter against what apptainer does, side by side.

Prints wall time, peak RSS and output size of
  (a) ours: the release example `sif_convert` (Engine export spooled, flattened, squashfs,
      SIF), at the engine's default gzip level (6) unless `--level` says otherwise;
  (b) `docker save` + extract the layers + `mksquashfs -comp gzip` (apptainer's way);
  (c) `mksquashfs -comp gzip` alone on the already-extracted rootfs;
then the ratios ours/(b) and ours/(c) against the targets: ours <= 1.0x (c), peak RSS
<= 256 MiB.

    python bench/sif_convert.py [--no-build] [--level N ...] [IMAGE]

IMAGE defaults to the real-kipoi base image (scripts/base-image.sh). `--no-build` uses the
example binary already in target/release; `--level` (repeatable) runs ours once per gzip
level, side by side. Needs `/usr/bin/time`, `mksquashfs`, `tar`, the docker CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
TARGET_RATIO = 1.0
TARGET_RSS_MIB = 256


def run(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Runs cmd through /usr/bin/time -v; returns (wall seconds, peak RSS MiB, result)."""
    t0 = time.monotonic()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{res.stderr[-3000:]}")
    rss = 0.0
    for line in res.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) / 1024
    return wall, rss, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="image to convert (default: the kipoi base image)")
    parser.add_argument("--no-build", action="store_true", help="use the example binary already built")
    parser.add_argument("--level", type=int, action="append", default=[], help="gzip level for ours (repeatable)")
    args = parser.parse_args()
    image = (
        args.image
        or subprocess.run(["bash", str(ROOT / "scripts/base-image.sh")], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    if not args.no_build:
        subprocess.run(["cargo", "build", "-q", "--release", "--example", "sif_convert"], cwd=ROOT, check=True)
    ours_bin = ROOT / "target/release/examples/sif_convert"
    work = Path(tempfile.mkdtemp(prefix="sif-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        # (a) ours, from the Engine, once per level.
        ours = []
        for level in args.level or [None]:
            extra = ["--level", str(level)] if level is not None else []
            wall, rss, res = run([str(ours_bin), image, str(work / "ours.sif"), *extra])
            report = json.loads(res.stdout.strip().splitlines()[-1])
            ours.append((level, wall, rss, report))
            (work / "ours.sif").unlink()

        # (b) docker save + extract the layers in order + mksquashfs (apptainer's pipeline).
        t0 = time.monotonic()
        rss_b = 0.0
        _, r, _ = run(["docker", "save", "-o", str(work / "save.tar"), image])
        rss_b = max(rss_b, r)
        save = work / "save"
        save.mkdir()
        _, r, _ = run(["tar", "-xf", str(work / "save.tar"), "-C", str(save)])
        rss_b = max(rss_b, r)
        (work / "save.tar").unlink()
        manifest = json.loads((save / "manifest.json").read_text())[0]
        rootfs = work / "rootfs"
        rootfs.mkdir()
        for layer in manifest["Layers"]:
            _, r, _ = run(["tar", "-xf", str(save / layer), "-C", str(rootfs)])
            rss_b = max(rss_b, r)
        shutil.rmtree(save)
        t_extract = time.monotonic() - t0
        # (c) mksquashfs alone, as apptainer calls it.
        wall_c, rss_c, _ = run(
            ["mksquashfs", str(rootfs), str(work / "ref.sqfs"), "-noappend", "-comp", "gzip", "-quiet", "-no-progress"]
        )
        wall_b = t_extract + wall_c
        rss_b = max(rss_b, rss_c)
        ref_size = (work / "ref.sqfs").stat().st_size

        report = ours[0][3]
        print(f"image: {image}")
        print(
            f"rootfs: {report['data_bytes'] / MIB:.0f} MiB of file data, {report['inodes']} inodes; "
            f"{os.cpu_count()} CPUs"
        )
        print(f"{'':46}{'wall s':>8}{'peak RSS MiB':>14}{'output MiB':>12}")
        for level, wall, rss, rep in ours:
            name = f"(a) ours, gzip level {level if level is not None else '6 (default)'}"
            print(f"{name:46}{wall:8.1f}{rss:14.0f}{rep['size'] / MIB:12.1f}")
        print(f"{'(b) docker save + extract + mksquashfs':46}{wall_b:8.1f}{rss_b:14.0f}{ref_size / MIB:12.1f}")
        print(f"{'(c) mksquashfs -comp gzip on the rootfs':46}{wall_c:8.1f}{rss_c:14.0f}{ref_size / MIB:12.1f}")
        for level, wall, rss, rep in ours:
            ratio_c = wall / wall_c
            verdict = "ok" if ratio_c <= TARGET_RATIO and rss <= TARGET_RSS_MIB else "MISSED"
            print(
                f"ours{'' if level is None else f' (level {level})'}: ours/(b) = {wall / wall_b:.2f}x   "
                f"ours/(c) = {ratio_c:.2f}x (target <= {TARGET_RATIO:.1f}x)   "
                f"peak RSS {rss:.0f} MiB (target <= {TARGET_RSS_MIB})   "
                f"size ours/mksquashfs = {rep['size'] / ref_size:.3f}   [{verdict}]"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
