"""Docker image -> SIF: the native converter against what apptainer does, side by side.

Prints wall time and peak RSS of
  (a) ours: the release example `sif_convert` (Engine export spooled, flattened, squashfs, SIF),
  (b) `docker save` + extract the layers + `mksquashfs -comp gzip` (apptainer's way),
  (c) `mksquashfs -comp gzip` alone on the already-extracted rootfs,
and the ratios ours/(b) and ours/(c). Targets: ours <= 1.0x (c), peak RSS <= 256 MiB.

    python bench/sif_convert.py [--no-build] [IMAGE]
        IMAGE defaults to the real-kipoi base image (scripts/base-image.sh); --no-build uses the
        example binary already in target/release.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """Runs cmd through /usr/bin/time -v; returns (wall seconds, peak RSS MiB, result)."""
    t0 = time.monotonic()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, **kw)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{res.stderr[-3000:]}")
    rss = 0.0
    for line in res.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) / 1024
    return wall, rss, res


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-build"]
    image = args[0] if args else subprocess.run(
        ["bash", str(ROOT / "scripts/base-image.sh")], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    if "--no-build" not in sys.argv:
        subprocess.run(["cargo", "build", "-q", "--release", "--example", "sif_convert"], cwd=ROOT, check=True)
    ours_bin = ROOT / "target/release/examples/sif_convert"
    work = Path(tempfile.mkdtemp(prefix="sif-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        # (a) ours, from the Engine.
        wall_a, rss_a, res = run([str(ours_bin), image, str(work / "ours.sif")])
        report = json.loads(res.stdout.strip().splitlines()[-1])

        # (b) docker save + extract layers in order + mksquashfs (apptainer's pipeline).
        t0 = time.monotonic()
        rss_b = 0.0
        w, r, _ = run(["docker", "save", "-o", str(work / "save.tar"), image])
        rss_b = max(rss_b, r)
        save = work / "save"
        save.mkdir()
        w, r, _ = run(["tar", "-xf", str(work / "save.tar"), "-C", str(save)])
        rss_b = max(rss_b, r)
        manifest = json.loads((save / "manifest.json").read_text())[0]
        rootfs = work / "rootfs"
        rootfs.mkdir()
        for layer in manifest["Layers"]:
            w, r, _ = run(["tar", "-xf", str(save / layer), "-C", str(rootfs)])
            rss_b = max(rss_b, r)
        t_extract = time.monotonic() - t0
        wall_c, rss_c, _ = run(
            ["mksquashfs", str(rootfs), str(work / "ref.sqfs"), "-noappend", "-comp", "gzip", "-quiet", "-no-progress"]
        )
        wall_b = t_extract + wall_c
        rss_b = max(rss_b, rss_c)
        ref_size = (work / "ref.sqfs").stat().st_size

        mib = 1 << 20
        print(f"image: {image}")
        print(f"rootfs: {report['data_bytes'] / mib:.0f} MiB of file data, {report['inodes']} inodes")
        print(f"{'':44}{'wall s':>8}{'peak RSS MiB':>14}{'output MiB':>12}")
        print(f"{'(a) ours (export+flatten+squashfs+SIF)':44}{wall_a:8.1f}{rss_a:14.0f}{report['size'] / mib:12.1f}")
        print(f"{'(b) docker save + extract + mksquashfs':44}{wall_b:8.1f}{rss_b:14.0f}{ref_size / mib:12.1f}")
        print(f"{'(c) mksquashfs -comp gzip on the rootfs':44}{wall_c:8.1f}{rss_c:14.0f}{ref_size / mib:12.1f}")
        print(f"ours/(b) = {wall_a / wall_b:.2f}x   ours/(c) = {wall_a / wall_c:.2f}x   (target <= 1.0x (c))")
        print(f"peak RSS ours = {rss_a:.0f} MiB (target <= 256 MiB); size ours/mksquashfs = {report['size'] / ref_size:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _ = resource  # RSS comes from /usr/bin/time -v per child


if __name__ == "__main__":
    main()
