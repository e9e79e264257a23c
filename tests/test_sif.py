"""The SIF path on real parts: the real-kipoi base image converted natively and tested
with real ``kipoi test`` inside the SIF (squashfuse + bwrap, or apptainer when installed),
offline against the tiny zoo; Ctrl-C; determinism; inspect/verify on Singularity-made
fixtures; resumable downloads from a local HTTP server; the command line; and upstream's
test-containers suite against local images."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kipoi_containers import sif
from kipoi_containers.errors import ChecksumMismatchError, DownloadError, SifError, SifTestError

from . import requirements
from .conftest import REPO, SHARED
from .docker_fixtures import TinyZoo
from .requirements import SETUP_HINT

SIF_FIXTURES = SHARED / "fixtures" / "sif"
BUSYBOX = SIF_FIXTURES / "busybox_1.34.1.sif"
CLI = [sys.executable, "-m", "kipoi_containers"]


def require(available: bool, what: str) -> None:
    """A test whose tool is missing fails under ``CI`` (naming it) and is skipped elsewhere
    (the project's one rule: :func:`tests.requirements.require`)."""
    requirements.require(what, None if available else "is missing", SETUP_HINT)


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


@pytest.fixture(scope="session")
def sif_runner() -> str:
    """The runner the tests use: apptainer/singularity when installed, else squashfuse + bwrap."""
    for tool in ("apptainer", "singularity"):
        if have(tool):
            return tool
    require(
        have("squashfuse", "bwrap") and (have("fusermount3") or have("fusermount")),
        "apptainer, or squashfuse + bwrap + fusermount3",
    )
    return "bwrap"


@pytest.fixture(scope="session")
def fixture_sif() -> Path:
    problem = requirements.shared_problem("fixtures", "sif", BUSYBOX.name)
    requirements.require("the SIF fixture", problem, requirements.SHARED_FIX)
    return BUSYBOX


@pytest.fixture(scope="session")
def fixture_sifs() -> list[Path]:
    """The Singularity-made SIFs of ``shared/fixtures/sif``: its absence fails under CI and
    skips elsewhere (naming it); a directory without the two SIFs is an error anywhere."""
    requirements.require(
        "the SIF fixtures directory", requirements.shared_problem("fixtures", "sif"), requirements.SHARED_FIX
    )
    sifs = sorted(SIF_FIXTURES.glob("*.sif"))
    names = [p.name for p in sorted(SIF_FIXTURES.iterdir())]
    assert len(sifs) >= 2, f"`{SIF_FIXTURES}` should hold the two Singularity-made SIFs, holds {names}"
    return sifs


@pytest.fixture(scope="session")
def base_sif(
    base_image: str, tiny_zoo: TinyZoo, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The real-kipoi base image converted natively, once per session: (path, report)."""
    out = tmp_path_factory.mktemp("base-sif") / "kipoi-base.sif"
    report = sif.convert(base_image, out, model_group="TinyMulti", zoo_commit=tiny_zoo.commit)
    return out, report


def squashfuse_mounts(under: Path) -> list[str]:
    """Mount points under ``under`` (this process's mount table shows every mount of the
    host's namespace, so also those of child processes)."""
    prefix = os.fspath(under.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split(" ")
        point = fields[1].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return points


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``TMPDIR`` for the engine's mount points; after the test: nothing mounted
    under it and nothing left in it."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", os.fspath(tmp))
    yield tmp
    assert squashfuse_mounts(tmp) == []
    assert sorted(p.name for p in tmp.iterdir()) == []


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


# ----------------------------------------------------------------------------- model tests


def test_model_passes_in_the_sif_offline_with_the_zoo_untouched(
    base_sif: tuple[Path, dict[str, Any]], tiny_zoo: TinyZoo, sif_runner: str, private_tmp: Path
) -> None:
    path, _ = base_sif
    result = sif.test_singularity_image(path.parent, path.name, "TinyMulti/b", zoo=tiny_zoo.path)
    assert result.passed and result.exit_code == 0
    assert "INFO [kipoi.cli.main] Successfully ran test_predict" in result.log_tail.splitlines(), result.log_tail
    assert "/tmp/kipoi-zoo" in result.log_tail  # ran against the bound checkout
    # kipoi wrote nothing into the checkout (no downloaded/, no __pycache__)
    assert tiny_zoo.git("status", "--porcelain", "--ignored") == ""


def test_the_test_runs_without_network_and_with_a_read_only_zoo(
    base_sif: tuple[Path, dict[str, Any]], tiny_zoo: TinyZoo, sif_runner: str, private_tmp: Path
) -> None:
    path, _ = base_sif
    probe = (
        "import socket, os\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n"
        "try:\n    open('/tmp/kipoi-zoo-ro/TinyLinear/x', 'w')\nexcept OSError as e:\n    print('read-only', e.errno)\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "except OSError as e:\n    print('no network')\n"
    )
    out = sif.run(path, ["python3", "-c", probe], binds=[(tiny_zoo.path, "/tmp/kipoi-zoo-ro")], network=False)
    assert out.exit_code == 0, out.tail
    assert out.tail.splitlines() == ["['lo']", "read-only 30", "no network"], out.tail
    assert out.runner == sif_runner


def test_a_broken_model_raises_with_its_message(
    base_sif: tuple[Path, dict[str, Any]], tiny_zoo: TinyZoo, sif_runner: str, private_tmp: Path
) -> None:
    path, _ = base_sif
    with pytest.raises(SifTestError, match=re.escape(tiny_zoo.broken_message)) as caught:
        sif.test_singularity_image(os.fspath(path.parent), path.name, tiny_zoo.broken, zoo=tiny_zoo.path)
    error = caught.value
    assert isinstance(error, ValueError)  # as upstream's test_singularity_image raised
    assert error.model == tiny_zoo.broken and error.exit_code == 1
    assert str(error).startswith(f"model `{tiny_zoo.broken}` failed its test in `{path}` (exit code 1)")
    assert error.log_tail.splitlines()[-1] == f"RuntimeError: {tiny_zoo.broken_message}"


def test_models_of_a_group_in_one_call(
    base_sif: tuple[Path, dict[str, Any]], tiny_zoo: TinyZoo, sif_runner: str, private_tmp: Path
) -> None:
    from kipoi_containers import _engine

    path, _ = base_sif
    models = ["TinyMulti/a", "TinyBroken", "TinySub/two"]
    results = _engine.sif_test_models(path, models, zoo_dir=tiny_zoo.path, concurrency=2)
    assert [(r.model, r.passed) for r in results] == [
        ("TinyMulti/a", True),
        ("TinyBroken", False),
        ("TinySub/two", True),
    ]


# ----------------------------------------------------------------------------- Ctrl-C

PYTHON_RUN = """
import sys
from kipoi_containers import sif
print("started", flush=True)
try:
    sif.run(sys.argv[1], ["sleep", sys.argv[2]])
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
"""


def our_sleepers(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[0].endswith(b"sleep") and marker.encode() in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("how", ["python", "cli"])
def test_ctrl_c_during_a_run_interrupts_quickly_and_unmounts(
    how: str, fixture_sif: Path, sif_runner: str, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    marker = f"{300 + (uuid.uuid4().int % 1000) / 1000:.3f}"  # `sleep 300.xyz`: found by its argument
    env = {**os.environ, "TMPDIR": os.fspath(tmp)}
    if how == "python":
        argv = [sys.executable, "-c", PYTHON_RUN, os.fspath(fixture_sif), marker]
    else:
        argv = [*CLI, "sif", "run", os.fspath(fixture_sif), "--", "sleep", marker]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not our_sleepers(marker):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        if sif_runner == "bwrap":
            assert len(squashfuse_mounts(tmp)) == 1
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)  # to Python only: the command has its own process group
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "python":
        assert proc.returncode == 42 and "KeyboardInterrupt" in out, (out, err)
    else:
        assert proc.returncode == 130 and "error: interrupted" in err, (out, err)
    assert "Traceback" not in err
    assert took < 5, took
    assert our_sleepers(marker) == []
    assert squashfuse_mounts(tmp) == []
    assert list(tmp.iterdir()) == []


# ----------------------------------------------------------------------------- apptainer

FAKE_RUNNER = """#!{python}
# A stand-in for `{name}`: records how it was called, answers on both streams, exits {code}.
import json, os, sys
call = {{
    "program": sys.argv[0],
    "argv": sys.argv[1:],
    "env": {{k: v for k, v in os.environ.items() if k.startswith(("APPTAINERENV_", "SINGULARITYENV_"))}},
}}
with open({record!r}, "a") as f:
    f.write(json.dumps(call) + "\\n")
print("{name} stand-in: stdout", flush=True)
print("{name} stand-in: stderr", file=sys.stderr, flush=True)
sys.exit({code})
"""


class FakeRunners:
    """Stand-ins for ``apptainer``/``singularity`` in a directory put first on ``PATH``."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.record = root / "calls.jsonl"

    def install(self, name: str, code: int) -> Path:
        path = self.bin / name
        path.write_text(FAKE_RUNNER.format(python=sys.executable, name=name, code=code, record=os.fspath(self.record)))
        path.chmod(0o755)
        return path

    def calls(self) -> list[dict[str, Any]]:
        """Every call since the last one, then forgets them."""
        if not self.record.exists():
            return []
        calls = [json.loads(line) for line in self.record.read_text().splitlines()]
        self.record.unlink()
        return calls


@pytest.fixture
def fake_runners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRunners:
    """No apptainer exists here: these stand-ins are what the engine finds first on ``PATH``
    (and ``$KIPOI_SIF_RUNNER`` unset, so its choice is the engine's own)."""
    fakes = FakeRunners(tmp_path / "fake-runners")
    monkeypatch.setenv("PATH", f"{fakes.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("KIPOI_SIF_RUNNER", raising=False)
    return fakes


@pytest.mark.parametrize("name", ["apptainer", "singularity"])
def test_apptainer_is_run_with_the_isolation_the_engine_builds_and_its_exit_code_is_returned(
    name: str, fixture_sif: Path, fake_runners: FakeRunners, tmp_path: Path
) -> None:
    program = fake_runners.install(name, 23)
    data = tmp_path / "data"
    data.mkdir()
    out = sif.run(
        fixture_sif,
        ["sh", "-c", "echo 'a b'; exit 5"],
        binds=[(data, "/tmp/in")],
        network=False,
        workdir="/tmp/in",
        env={"WHO": "kipoi two"},
        runner=name,
    )
    assert (out.exit_code, out.timed_out, out.runner) == (23, False, name), out
    assert sorted(out.tail.splitlines()) == [f"{name} stand-in: stderr", f"{name} stand-in: stdout"], out.tail
    prefix = "SINGULARITYENV_" if name == "singularity" else "APPTAINERENV_"
    assert fake_runners.calls() == [
        {
            "program": os.fspath(program),
            "argv": [
                "exec", "--cleanenv", "--contain",
                "--net", "--network", "none",
                "--bind", f"{data}:/tmp/in:ro",
                "--pwd", "/tmp/in",
                os.fspath(fixture_sif),
                "sh", "-c", "echo 'a b'; exit 5",
            ],
            "env": {f"{prefix}WHO": "kipoi two"},
        }
    ]  # fmt: skip
    # The defaults: the host's network, no binds, no working directory, no variables.
    out = sif.run(fixture_sif, ["true"], runner=name)
    assert (out.exit_code, out.runner) == (23, name)
    argv = ["exec", "--cleanenv", "--contain", os.fspath(fixture_sif), "true"]
    assert fake_runners.calls() == [{"program": os.fspath(program), "argv": argv, "env": {}}]


def test_auto_prefers_apptainer_then_singularity_and_a_named_runner_wins(
    fixture_sif: Path, fake_runners: FakeRunners, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_runners.install("singularity", 4)
    # Only singularity (PATH holds nothing else): auto takes it, apptainer by name is refused.
    monkeypatch.setenv("PATH", os.fspath(fake_runners.bin))
    assert (sif.run(fixture_sif, ["true"]).runner, [c["program"] for c in fake_runners.calls()]) == (
        "singularity",
        [os.fspath(fake_runners.bin / "singularity")],
    )
    with pytest.raises(SifError, match=r"`apptainer` is not on PATH"):
        sif.run(fixture_sif, ["true"], runner="apptainer")
    assert fake_runners.calls() == []
    # Both: auto (argument unset or "auto", variable unset or "auto") takes apptainer ...
    fake_runners.install("apptainer", 3)
    for variable in (None, "auto"):
        if variable is None:
            monkeypatch.delenv("KIPOI_SIF_RUNNER", raising=False)
        else:
            monkeypatch.setenv("KIPOI_SIF_RUNNER", variable)
        for runner in (None, "auto"):
            out = sif.run(fixture_sif, ["true"], runner=runner)
            assert (out.runner, out.exit_code) == ("apptainer", 3), (variable, runner)
            assert [c["program"] for c in fake_runners.calls()] == [os.fspath(fake_runners.bin / "apptainer")]
    # ... and a runner named by the variable or the argument is the one run.
    monkeypatch.setenv("KIPOI_SIF_RUNNER", "singularity")
    assert (sif.run(fixture_sif, ["true"]).runner, len(fake_runners.calls())) == ("singularity", 1)
    # An argument wins over the variable, "auto" too: the first available, not the variable's.
    assert (sif.run(fixture_sif, ["true"], runner="auto").runner, len(fake_runners.calls())) == ("apptainer", 1)
    monkeypatch.setenv("KIPOI_SIF_RUNNER", "bwrap")
    assert (sif.run(fixture_sif, ["true"], runner="auto").runner, len(fake_runners.calls())) == ("apptainer", 1)
    monkeypatch.delenv("KIPOI_SIF_RUNNER")
    assert (sif.run(fixture_sif, ["true"], runner="singularity").exit_code, len(fake_runners.calls())) == (4, 1)


def test_cli_run_with_apptainer_passes_its_exit_code_and_output(
    fixture_sif: Path, fake_runners: FakeRunners, tmp_path: Path
) -> None:
    program = fake_runners.install("apptainer", 42)
    env = {**os.environ, "TMPDIR": os.fspath(tmp_path)}
    isolation = ["exec", "--cleanenv", "--contain", "--net", "--network", "none"]
    argv = [*isolation, os.fspath(fixture_sif), "sh", "-c", "exit 0"]
    for how, extra in (("--runner", {}), ("KIPOI_SIF_RUNNER", {"KIPOI_SIF_RUNNER": "apptainer"}), ("auto", {})):
        runner = ["--runner", "apptainer"] if how == "--runner" else []
        out = cli(
            "sif", "-v", "run", *runner, "--no-network", os.fspath(fixture_sif), "--", "sh", "-c", "exit 0",
            env={**env, **extra},
        )  # fmt: skip
        assert out.returncode == 42, (how, out.stdout, out.stderr)
        assert out.stdout == "apptainer stand-in: stdout\n", (how, out.stdout)  # not captured: the caller's
        assert "apptainer stand-in: stderr" in out.stderr and "with apptainer" in out.stderr, (how, out.stderr)
        assert fake_runners.calls() == [{"program": os.fspath(program), "argv": argv, "env": {}}], how


def test_a_model_test_with_apptainer_binds_the_zoo_offline_and_reports_its_exit_code(
    fixture_sif: Path, fake_runners: FakeRunners, tmp_path: Path
) -> None:
    from kipoi_containers import _engine

    zoo = tmp_path / "zoo"
    (zoo / "TinyLinear").mkdir(parents=True)
    script = (
        "mkdir -p /tmp/kipoi-zoo && cp -as /tmp/kipoi-zoo-ro/. /tmp/kipoi-zoo/ && cd /tmp/kipoi-zoo"
        ' && exec kipoi test "$@"'
    )
    argv = [
        "exec", "--cleanenv", "--contain", "--net", "--network", "none",
        "--bind", f"{zoo.resolve()}:/tmp/kipoi-zoo-ro:ro",
        os.fspath(fixture_sif),
        "sh", "-c", script, "sh", "TinyLinear", "--source=dir", "--batch_size=2",
    ]  # fmt: skip
    env = {"APPTAINERENV_PYTHONDONTWRITEBYTECODE": "1"}
    program = os.fspath(fake_runners.install("apptainer", 0))
    result = _engine.sif_test_model(fixture_sif, "TinyLinear", zoo_dir=zoo, extra_args=["--batch_size=2"])
    assert (result.passed, result.exit_code, result.image) == (True, 0, os.fspath(fixture_sif))
    assert fake_runners.calls() == [{"program": program, "argv": argv, "env": env}]

    fake_runners.install("apptainer", 1)
    result = _engine.sif_test_model(fixture_sif, "TinyLinear", zoo_dir=zoo, extra_args=["--batch_size=2"])
    assert (result.passed, result.exit_code) == (False, 1)
    assert "apptainer stand-in: stderr" in result.log_tail.splitlines(), result.log_tail
    assert fake_runners.calls() == [{"program": program, "argv": argv, "env": env}]
    with pytest.raises(SifTestError) as caught:
        sif.test_singularity_image(fixture_sif.parent, fixture_sif.name, "TinyLinear", zoo=zoo)
    assert (caught.value.model, caught.value.exit_code) == ("TinyLinear", 1)
    [call] = fake_runners.calls()
    # upstream's call: the per-model arguments of the engine's table instead of ours
    assert call["argv"] == [*argv[:15], *_engine.model_test_args("TinyLinear")], call["argv"]
    assert call["env"] == env


# ----------------------------------------------------------------------------- conversion


def test_converting_again_gives_the_same_bytes_and_inspect_shows_the_source(
    base_sif: tuple[Path, dict[str, Any]], base_image: str, tiny_zoo: TinyZoo, tmp_path: Path
) -> None:
    path, report = base_sif
    again = tmp_path / "again.sif"
    out = cli(
        "sif", "convert", base_image, os.fspath(again), "--model-group", "TinyMulti", "--zoo-commit", tiny_zoo.commit
    )
    assert out.returncode == 0, out.stderr
    assert f"md5 {report['md5']}" in out.stdout
    assert md5_of(again) == md5_of(path) == report["md5"]

    out = cli("sif", "inspect", os.fspath(again))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    digest = report["source_digest"]
    assert re.search(rf"org\.kipoi-containers\.source-image\s+{re.escape(base_image)}$", text, re.M), text
    assert re.search(rf"org\.kipoi-containers\.source-digest\s+{re.escape(digest)}$", text, re.M), text
    assert re.search(r"org\.kipoi-containers\.model-group\s+TinyMulti$", text, re.M), text
    assert re.search(rf"org\.kipoi-containers\.zoo-commit\s+{tiny_zoo.commit}$", text, re.M), text
    # the descriptor table: the squashfs partition, 4096-aligned, PrimSys, amd64
    partition = [line for line in text.splitlines() if line.startswith("4 ")]
    assert len(partition) == 1 and partition[0].split()[1] == "FS", text
    assert int(partition[0].split()[2]) % 4096 == 0
    assert partition[0].rstrip().endswith("Squashfs/*System/amd64"), text
    info = json.loads(cli("sif", "inspect", "--json", os.fspath(again)).stdout)
    assert info["labels"]["org.kipoi-containers.source-digest"] == digest


def test_a_changed_image_converts_to_other_bytes(
    base_sif: tuple[Path, dict[str, Any]], base_image: str, sif_runner: str, tmp_path: Path, private_tmp: Path
) -> None:
    _, report = base_sif
    context = tmp_path / "context"
    context.mkdir()
    (context / "added.txt").write_text("one more file\n")
    (context / "Dockerfile").write_text(f"FROM {base_image}\nCOPY added.txt /added.txt\n")
    tag = f"kipoi-containers-test/sif-changed:{uuid.uuid4().hex[:12]}"
    built = subprocess.run(["docker", "build", "-q", "-t", tag, os.fspath(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    try:
        out = tmp_path / "changed.sif"
        changed = sif.convert(tag, out, model_group="TinyMulti", zoo_commit="x")
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    assert changed["md5"] != report["md5"]
    assert changed["source_digest"] != report["source_digest"]
    ran = sif.run(out, ["cat", "/added.txt"])
    assert (ran.exit_code, ran.tail) == (0, "one more file")


def test_verify_accepts_singularity_made_sifs_and_names_a_truncation(fixture_sifs: list[Path], tmp_path: Path) -> None:
    # Not a parametrisation over the directory's listing: with the directory missing that
    # would be zero cases, which pytest reports as one skip even under CI.
    for fixture in fixture_sifs:
        out = cli("sif", "verify", os.fspath(fixture))
        assert (out.returncode, out.stdout.strip()) == (0, f"ok: `{fixture}` is a valid SIF"), out.stderr
        cut = tmp_path / fixture.name
        cut.write_bytes(fixture.read_bytes()[: fixture.stat().st_size - 5000])
        out = cli("sif", "verify", os.fspath(cut))
        assert out.returncode == 1, (fixture.name, out.stdout, out.stderr)
        assert out.stderr.startswith(f"error: `{cut}` is not a valid SIF: "), out.stderr
        assert "file" in out.stderr and "Traceback" not in out.stderr
        with pytest.raises(SifError, match="is not a valid SIF"):
            sif.verify(cut)


# ----------------------------------------------------------------------------- downloads


class FileServer:
    """Serves one file over HTTP on 127.0.0.1 with ``Range: bytes=N-`` support (unless
    ``ranges`` is off); the first ``drops`` responses stop half-way (the headers promised the
    whole length) and close; a ``status`` other than 200 answers every request with it."""

    def __init__(self, data: bytes, *, ranges: bool = True, drops: int = 0, status: int = 200) -> None:
        self.data, self.ranges, self.drops, self.status = data, ranges, drops, status
        self.requests: list[str | None] = []  # the Range header of each request
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append(rng)
                if server.status != 200:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "14")
                    self.end_headers()
                    self.wfile.write(b"no such record")
                    return
                start = 0
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                body = server.data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"v1"')
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                self.end_headers()
                if server.drops > 0:
                    server.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/x.sif?download=1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


PAYLOAD = bytes(range(256)) * 12_000 + b"tail"  # ~3 MiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


def index_for(url: str, md5: str = PAYLOAD_MD5) -> dict[str, dict[str, str]]:
    return {
        "Group": {"url": "http://127.0.0.1:9/never.sif", "name": "group-image", "md5": "0" * 32},
        "Group/sub": {"url": url, "name": "kipoi-docker_sub-slim", "md5": md5},
    }


def test_a_download_interrupted_half_way_resumes_with_a_range_request(tmp_path: Path) -> None:
    with FileServer(PAYLOAD, drops=1) as server:
        name = sif.get_singularity_image(tmp_path, index_for(server.url), "Group/sub/model")
    assert name == Path("kipoi-docker_sub-slim.sif")  # the longest-prefix entry
    assert (tmp_path / name).read_bytes() == PAYLOAD
    assert server.requests[0] is None
    assert len(server.requests) == 2 and re.fullmatch(r"bytes=[1-9]\d*-", server.requests[1] or ""), server.requests
    assert sorted(p.name for p in tmp_path.iterdir()) == [name.name]


def test_a_partial_file_from_an_earlier_run_is_resumed(tmp_path: Path) -> None:
    (tmp_path / "kipoi-docker_sub-slim.sif.part").write_bytes(PAYLOAD[:1000])
    with FileServer(PAYLOAD) as server:
        got = sif.download(server.url, tmp_path / "kipoi-docker_sub-slim.sif", md5=PAYLOAD_MD5)
    assert server.requests == ["bytes=1000-"]
    assert (got["resumed_from"], got["md5"], got["bytes"]) == (1000, PAYLOAD_MD5, len(PAYLOAD))
    assert [p.name for p in tmp_path.iterdir()] == ["kipoi-docker_sub-slim.sif"]


def test_a_server_without_range_support_restarts_cleanly(tmp_path: Path) -> None:
    with FileServer(PAYLOAD, ranges=False, drops=1) as server:
        sif.get_singularity_image(tmp_path, index_for(server.url), "Group/sub")
    assert (tmp_path / "kipoi-docker_sub-slim.sif").read_bytes() == PAYLOAD
    assert len(server.requests) == 2 and server.requests[1] is not None  # asked for a range, got it all
    assert [p.name for p in tmp_path.iterdir()] == ["kipoi-docker_sub-slim.sif"]


def test_an_md5_mismatch_raises_and_keeps_no_file(tmp_path: Path) -> None:
    with FileServer(PAYLOAD) as server, pytest.raises(ChecksumMismatchError, match=r"expected 0{32}; nothing was kept"):
        sif.get_singularity_image(tmp_path, index_for(server.url, md5="0" * 32), "Group/sub")
    assert list(tmp_path.iterdir()) == []


def test_an_error_status_is_a_download_error_with_the_servers_words(tmp_path: Path) -> None:
    with FileServer(PAYLOAD, status=404) as server, pytest.raises(DownloadError) as caught:
        sif.get_singularity_image(tmp_path, index_for(server.url), "Group/sub")
    error = caught.value
    assert error.status == 404 and isinstance(error, OSError)
    assert str(error) == f"downloading `{server.url}` failed: the server answered 404 Not Found: no such record"
    assert list(tmp_path.iterdir()) == []


def test_singularity_pull_folder_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pull = tmp_path / "pull"
    monkeypatch.setenv("SINGULARITY_PULL_FOLDER", os.fspath(pull))
    monkeypatch.chdir(tmp_path)
    with FileServer(PAYLOAD) as server:
        name = sif.get_singularity_image(None, index_for(server.url), "Group/sub")
        again = sif.get_singularity_image(None, index_for(server.url), "Group/sub")  # present: no request
    assert name == again == Path("kipoi-docker_sub-slim.sif")
    assert (pull / name).read_bytes() == PAYLOAD
    assert len(server.requests) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pull"]


def test_a_model_no_entry_covers_is_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        sif.get_singularity_image(tmp_path, index_for("http://127.0.0.1:9/x"), "Groupie/x")


# ----------------------------------------------------------------------------- command line


def test_cli_lists_its_commands_without_arguments() -> None:
    out = cli()
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m kipoi_containers COMMAND")
    assert re.search(r"^  sif\s+inspect, verify, run and convert", out.stdout, re.M), out.stdout
    out = cli("no-such-command")
    assert out.returncode == 2 and "error: unknown command `no-such-command`" in out.stderr


def test_cli_inspect_shows_the_descriptor_table(fixture_sif: Path) -> None:
    out = cli("sif", "inspect", os.fspath(fixture_sif))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "UUID:        51038e5c-c2f0-4025-bdc0-d987c3a43663" in lines
    header = next(line for line in lines if line.startswith("ID "))
    assert header.split()[:7] == ["ID", "TYPE", "OFFSET", "SIZE", "GROUP", "LINK", "NAME"]
    rows = [line.split() for line in lines if re.match(r"^\d+ ", line)]
    assert rows == [
        ["1", "Def.FILE", "32768", "40", "1", "NONE", "."],
        ["2", "JSON.Generic", "36864", "90", "1", "NONE", "oci-config.json"],
        ["3", "FS", "40960", "753664", "1", "NONE", "squashfs-152195914", "Squashfs/*System/amd64"],
    ]


def test_cli_run_returns_the_commands_exit_code(fixture_sif: Path, sif_runner: str, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": os.fspath(tmp_path)}
    out = cli(
        "sif", "run", "--env", "WHO=kipoi", os.fspath(fixture_sif), "--", "sh", "-c", 'echo "hi $WHO"; exit 7', env=env
    )
    assert (out.returncode, out.stdout) == (7, "hi kipoi\n"), out.stderr
    out = cli("sif", "run", "--timeout", "1", os.fspath(fixture_sif), "--", "sleep", "30", env=env)
    assert out.returncode == 124 and "exceeded 1s" in out.stderr
    out = cli("sif", "-v", "run", os.fspath(fixture_sif), "--", "true", env=env)
    assert out.returncode == 0 and f"with {sif_runner}" in out.stderr, out.stderr  # the runner is logged
    assert list(tmp_path.iterdir()) == [] and squashfuse_mounts(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [["sif"], ["sif", "run", "x.sif"], ["sif", "run", "--timeout", "-1", "x.sif", "--", "true"], ["sif", "frobnicate"]],
    ids=["no-action", "run-without-command", "bad-timeout", "unknown-action"],
)
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "usage:" in out.stderr and "error:" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("action", ["inspect", "verify", "run", "convert"])
def test_cli_help_of_each_action(action: str) -> None:
    out = cli("sif", action, "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m kipoi_containers sif " + action), out.stdout


def test_cli_errors_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = cli("sif", "inspect", os.fspath(tmp_path / "missing.sif"))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: could not open the SIF `{tmp_path / 'missing.sif'}`"), out.stderr
    assert "Traceback" not in out.stderr
    out = cli("sif", "convert", "kipoi-containers-test/no-such-image:none", os.fspath(tmp_path / "o.sif"))
    assert out.returncode == 1 and out.stderr.startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "o.sif").exists()


# ----------------------------------------------------------------------------- test-containers


def test_models_suite_runs_full_slim_and_sif_against_local_images(
    base_sif: tuple[Path, dict[str, Any]], base_image: str, tiny_zoo: TinyZoo, sif_runner: str, tmp_path: Path
) -> None:
    """Upstream's test_models_from_command_line on our plugin: each model in its image, its
    -slim image and its SIF; the SIF once from the index (served locally) and once
    converted from the local -slim image — all offline."""
    path, report = base_sif
    repo = f"kipoi-containers-test/sif-suite-{uuid.uuid4().hex[:8]}"
    full, slim = f"{repo}:tinymulti", f"{repo}:tinymulti-slim"
    for tag in (full, slim):
        subprocess.run(["docker", "tag", base_image, tag], check=True, capture_output=True)
    info = tmp_path / "container-info"
    info.mkdir()
    try:
        with FileServer(path.read_bytes()) as server:
            index = {
                "model-to-docker.json": {"TinyMulti": full},
                "docker-to-model.json": {full: ["TinyMulti/a", "TinyMulti/b", "TinyMulti/c"]},
                "model-to-singularity.json": {
                    "TinyMulti": {"url": server.url, "name": "tinymulti-slim", "md5": report["md5"]}
                },
            }
            for name, content in index.items():
                (info / name).write_text(json.dumps(content, indent=4))
            common = [
                "test-containers/test_models_from_command_line.py",
                "--model=TinyMulti/a",
                f"--kipoi-zoo={tiny_zoo.path}",
                f"--kipoi-container-info={info}",
                "-p",
                "no:cacheprovider",
                "-v",
            ]
            for source in ("index", "docker"):
                pull = tmp_path / f"pull-{source}"
                env = {**os.environ, "SINGULARITY_PULL_FOLDER": os.fspath(pull), "TMPDIR": os.fspath(tmp_path)}
                out = subprocess.run(
                    [sys.executable, "-m", "pytest", *common, f"--sif-from={source}"],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=900,
                )
                assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
                assert "3 passed" in out.stdout, out.stdout
                for test in ("in_its_image", "in_its_slim_image", "in_its_singularity_image"):
                    assert f"test_model_runs_{test}[TinyMulti/a] PASSED" in out.stdout, out.stdout
                expected = "tinymulti-slim.sif" if source == "index" else f"{repo.split('/')[1]}_tinymulti-slim.sif"
                assert [p.name for p in pull.iterdir()] == [expected]
            assert len(server.requests) == 1  # the index source downloaded the SIF once
    finally:
        subprocess.run(["docker", "rmi", full, slim], capture_output=True)
