"""Upload benchmark: the client's CPU per GiB, ours (md5 in the same pass) vs. upstream's way.

What the client controls is the CPU it spends to get a file into a Zenodo bucket *and* know its
md5 (the index records it). Wall time is bounded by the server; here the server is the
pure-Python Zenodo emulator, whose speed varies from run to run, so wall time is printed but
not compared. The figure compared is CPU seconds (user + sys, all threads of the client
process, from ``getrusage(RUSAGE_SELF)`` around the work only: no interpreter start, imports
or deposition set-up) per GiB:

- ``ours``:     ``kipoi_containers.zenodoclient.Client.upload_file`` (the Rust engine streams
                the file, hashes it in the same pass and checks the md5 Zenodo answers);
- ``upstream``: what upstream's ``zenodoclient.Client.put_content(url, Path)`` did, a
                ``requests`` upload of the open file (``session.put(url, data=fh)``), followed
                by the separate md5 pass over the file that the index needs (``hashlib``,
                1 MiB reads).

Each upload runs in its own process (so peak RSS is its own), against the same emulator
(started in a process of its own) and the same file; rounds alternate the two clients, and the
lowest CPU of each is compared. Prints both CPU s/GiB, wall time, peak RSS, and the ratio
ours/upstream (target <= 0.5).

    python bench/zenodo_upload.py [--size-mib 1024] [--rounds 3] [--site DIR] [--keep-file PATH]

Measure a release build of the engine (see bench/README.md: ``--site``); an editable install
is a debug build, far slower at hashing. Not part of pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-" + secrets.token_hex(16)
TARGET = 0.5

CHILD = r"""
import json, resource, sys, time

mode, base, token, path = sys.argv[1:5]


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime




def md5_pass(path):
    import hashlib

    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
    return md5.hexdigest()


if mode == "md5":  # the md5 pass alone, both ways: the floor under either client
    import kipoi_containers._engine as engine

    c0 = cpu()
    by_hashlib = md5_pass(path)
    c1 = cpu()
    by_engine = engine.md5_file(path)
    c2 = cpu()
    print(json.dumps({"hashlib": sum(c1) - sum(c0), "engine": sum(c2) - sum(c1), "md5": by_hashlib,
                      "engine_md5": by_engine}))
    sys.exit(0)
elif mode == "ours":
    import kipoi_containers._engine as engine
    from kipoi_containers import zenodoclient

    client = zenodoclient.Client(base, token)
    bucket = client.create_deposition()["links"]["bucket"]
    before, (u0, s0), t0 = rss_mib(), cpu(), time.perf_counter()
    obj = client.upload_file(bucket, "bench.bin", path)  # md5 computed while sending, checked
    wall, (u1, s1) = time.perf_counter() - t0, cpu()
    local = remote = obj["checksum"].split(":")[-1]
    where = engine.__file__
else:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    dep = session.post(f"{base}/api/deposit/depositions", json={})
    dep.raise_for_status()
    bucket = dep.json()["links"]["bucket"]
    before, (u0, s0), t0 = rss_mib(), cpu(), time.perf_counter()
    with open(path, "rb") as fh:
        r = session.put(f"{bucket}/bench.bin", data=fh)
    r.raise_for_status()
    local = md5_pass(path)
    wall, (u1, s1) = time.perf_counter() - t0, cpu()
    remote = r.json()["checksum"].split(":")[-1]
    where = requests.__file__
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "user": u1 - u0, "sys": s1 - s0, "peak_rss_mib": peak,
                  "rss_before_mib": before, "md5": local, "remote_md5": remote, "module": where}))
"""


def make_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of incompressible data; return their md5."""
    block = os.urandom(1024 * 1024)
    md5 = hashlib.md5()
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            f.write(block[:n])
            md5.update(block[:n])
            written += n
            block = block[1:] + block[:1]  # not one repeated block
    return md5.hexdigest()


def file_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
    return md5.hexdigest()


def run_child(mode: str, base: str, path: Path, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, base, TOKEN, str(path)], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"error: the {mode} client failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="uploads per client, alternating (lowest CPU counts)")
    parser.add_argument("--site", help="directory prepended to PYTHONPATH for the clients (a release build)")
    parser.add_argument("--keep-file", help="use/keep the test file at this path")
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("ZENODO_ACCESS_TOKEN", None)
    if args.site:
        env["PYTHONPATH"] = os.pathsep.join([args.site, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    size = args.size_mib * 1024 * 1024
    gib = size / 2**30

    runs: dict[str, list[dict]] = {"upstream": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="zenodo-bench-") as tmp:
        path = Path(args.keep_file) if args.keep_file else Path(tmp) / "bench.bin"
        if path.exists() and path.stat().st_size == size:
            expected = file_md5(path)
        else:
            print(f"writing {args.size_mib} MiB test file {path} ...", flush=True)
            expected = make_file(path, size)
        storage = Path(tmp) / "storage"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.zenodo", "--port", "0", "--token", TOKEN, "--storage", storage],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert emulator.stdout is not None
            base = emulator.stdout.readline().split()[-1]
            for round_ in range(1, args.rounds + 1):
                for mode in ("upstream", "ours"):
                    r = run_child(mode, base, path, env)
                    for blob in storage.glob("*.bin"):
                        blob.unlink()  # keep the disk use of repeated rounds bounded
                    if not r["md5"] == r["remote_md5"] == expected:
                        raise SystemExit(f"error: {mode}: md5 {r['md5']}, Zenodo {r['remote_md5']}, file {expected}")
                    runs[mode].append(r)
                    cpu = r["user"] + r["sys"]
                    print(f"round {round_} {mode:8s} cpu {cpu:6.2f} s (user {r['user']:.2f}, sys {r['sys']:.2f})"
                          f"  wall {r['wall']:6.2f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB", flush=True)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
            if emulator.stdout is not None:
                emulator.stdout.close()
        floor = run_child("md5", "", path, env)
        if not floor["md5"] == floor["engine_md5"] == expected:
            raise SystemExit(f"error: md5 pass: hashlib {floor['md5']}, engine {floor['engine_md5']}, file {expected}")
    print(f"engine: {runs['ours'][0]['module']}")
    print(f"file: {args.size_mib} MiB, md5 {expected} (both clients and the emulator agree)")
    best = {mode: min(rs, key=lambda r: r["user"] + r["sys"]) for mode, rs in runs.items()}
    for mode, label in (("upstream", "upstream (requests + md5 pass)"), ("ours", "ours (Rust, md5 in the same pass)")):
        r = best[mode]
        cpu = r["user"] + r["sys"]
        print(f"{label:34s} {cpu / gib:6.2f} CPU s/GiB  (user {r['user'] / gib:.2f}, sys {r['sys'] / gib:.2f})"
              f"  wall {r['wall']:6.2f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB"
              f" (+{r['peak_rss_mib'] - r['rss_before_mib']:.1f} MiB during the upload)")
    ratio = (best["ours"]["user"] + best["ours"]["sys"]) / (best["upstream"]["user"] + best["upstream"]["sys"])
    print(f"CPU ratio ours/upstream: {ratio:.2f} (target <= {TARGET}): {'met' if ratio <= TARGET else 'NOT met'}")
    upstream_cpu = best["upstream"]["user"] + best["upstream"]["sys"]
    print(f"md5 pass alone: hashlib {floor['hashlib'] / gib:.2f}, engine md5_file {floor['engine'] / gib:.2f} CPU s/GiB"
          f" = {floor['hashlib'] / upstream_cpu:.2f} and {floor['engine'] / upstream_cpu:.2f} of upstream's total:"
          " the lowest ratio an upload that costs nothing but its md5 could reach")
    return 0


if __name__ == "__main__":
    sys.exit(main())
