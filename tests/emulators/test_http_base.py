"""The HTTP base the emulators share (``tests/emulators/base.py``): what both emulators do through
the same code, and the base on its own (a minimal emulator)."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.emulators.base import HTTPEmulator, HTTPError, Request, Response, json_response
from tests.emulators.github import GitHubEmulator
from tests.emulators.zenodo import ZenodoEmulator

TOKEN = "base-test-token-0123456789abcdef"


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    (repo / "README.md").write_text("# models\n")
    ident = ["-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *ident, "commit", "-q", "-m", "initial"], check=True)
    return repo


class Case:
    """One emulator and a write request with a JSON body it accepts."""

    def __init__(self, emulator: HTTPEmulator, method: str, path: str, body: dict, ok: int, auth: str) -> None:
        self.emulator, self.method, self.path, self.body, self.ok = emulator, method, path, body, ok
        self.headers = {
            "Authorization": f"{auth} {TOKEN}", "User-Agent": "base-tests", "Content-Type": "application/json"
        }

    @property
    def read_path(self) -> str:
        return "/api/deposit/depositions" if isinstance(self.emulator, ZenodoEmulator) else "/repos/kipoi/models"


@pytest.fixture(params=["zenodo", "github"])
def case(request: pytest.FixtureRequest, zoo: Path) -> Iterator[Case]:
    if request.param == "zenodo":
        emulator: HTTPEmulator = ZenodoEmulator(TOKEN)
        made = Case(emulator, "POST", "/api/deposit/depositions", {"metadata": {"title": "chunked"}}, 201, "Bearer")
    else:
        emulator = GitHubEmulator({"kipoi/models": zoo}, token=TOKEN)
        body = {"message": "chunked", "content": "eA=="}
        made = Case(emulator, "PUT", "/repos/kipoi/models/contents/new.txt", body, 201, "token")
    with emulator:
        yield made
        assert emulator.server_errors == []


def _connection(emulator: HTTPEmulator) -> http.client.HTTPConnection:
    url = urllib.parse.urlsplit(emulator.url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def test_a_chunked_body_is_read_and_the_connection_kept(case: Case) -> None:
    conn = _connection(case.emulator)
    data = json.dumps(case.body).encode()
    pieces = iter([data[:5], data[5:]])
    conn.request(case.method, case.path, body=pieces, headers=case.headers, encode_chunked=True)
    first = conn.getresponse()
    assert first.status == case.ok, first.read()
    assert first.getheader("Connection") != "close"
    first.read()
    # The same connection serves the next request: the chunked body was read to its end.
    conn.request("GET", case.read_path, headers=case.headers)
    assert conn.getresponse().status == 200
    conn.close()
    entry = case.emulator.requests_log[-2]
    assert entry["method"] == case.method and entry["status"] == case.ok


def test_a_dropped_connection_is_logged_without_status(case: Case) -> None:
    case.emulator.inject(0 if isinstance(case.emulator, GitHubEmulator) else None, drop_connection=True, method="GET")
    with pytest.raises(requests.ConnectionError):
        requests.get(case.emulator.url + case.read_path, headers=case.headers, timeout=10)
    assert case.emulator.requests_log[-1]["status"] is None
    assert requests.get(case.emulator.url + case.read_path, headers=case.headers, timeout=10).status_code == 200


def test_a_token_in_the_url_is_a_violation_and_never_logged(case: Case) -> None:
    requests.get(case.emulator.url + case.read_path, headers=case.headers, timeout=10)
    assert case.emulator.token_in_url_violations == []
    requests.get(f"{case.emulator.url}{case.read_path}?access_token={TOKEN}&x=1", timeout=10)
    requests.get(f"{case.emulator.url}{case.read_path}/{TOKEN}", headers=case.headers, timeout=10)
    violations = case.emulator.token_in_url_violations
    assert len(violations) == 2 and all(TOKEN not in v and "***" in v for v in violations)
    assert TOKEN not in json.dumps(case.emulator.requests_log)
    first, _, second = case.emulator.requests_log[-3:]
    assert first["headers"]["authorization"].endswith(" ***")
    assert case.emulator.requests_log[-2]["query"] == {"access_token": ["***"], "x": ["1"]}
    assert second["path"] == f"{case.read_path}/***"
    with pytest.raises(AssertionError, match="token in URL"):
        case.emulator.assert_no_token_in_urls()
    violations.clear()


def test_faults_match_method_path_prefix_times_and_after(case: Case) -> None:
    status = {"status": 503} if isinstance(case.emulator, GitHubEmulator) else {"status": 503, "after": 1}
    case.emulator.inject(**status, method="GET", path_prefix=case.read_path, times=2)
    url = case.emulator.url + case.read_path

    def statuses(n: int) -> list[int]:
        return [requests.get(url, headers=case.headers, timeout=10).status_code for _ in range(n)]

    expected = [503, 503, 200] if isinstance(case.emulator, GitHubEmulator) else [200, 503, 503, 200]
    assert statuses(len(expected)) == expected
    with pytest.raises(ValueError, match="times must be at least 1"):
        case.emulator.inject(500, times=0)
    case.emulator.inject(500, path_prefix="/elsewhere")
    case.emulator.clear_faults()
    assert statuses(1) == [200]


# ----------------------------------------------------------------- the base on its own


class Echo(HTTPEmulator[Request]):
    """The least an emulator says: its answer and its error shape."""

    request_type = Request
    server_header = "echo"

    def _respond(self, req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("a bug")
        if req.path == "/teapot":
            raise HTTPError(json_response(418, {"message": "short-circuit"}))
        if req.path == "/big":
            return Response(200, b"x" * (32 * 1024 * 1024), "application/octet-stream")
        if req.path == "/early":
            return json_response(200, {"read": False})  # answers without reading the body
        return json_response(200, {"path": req.path, "q": req.q("q"), "body": req.body().decode()})

    def _error_answer(self, status: int, req: Request, fault: object) -> Response:
        return json_response(status, {"error": status})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo("127.0.0.1", 0) as emulator:
        yield emulator


def test_routes_see_the_path_without_trailing_slashes(echo: Echo) -> None:
    resp = requests.post(f"{echo.url}/a/b//?q=1", data=b"hi", timeout=10)
    assert resp.json() == {"path": "/a/b", "q": "1", "body": "hi"}
    assert resp.headers["Server"] == "echo"
    assert echo.requests_log[-1]["path"] == "/a/b//"  # the log keeps the path as received


def test_only_the_emulators_methods_are_served(echo: Echo) -> None:
    assert requests.patch(f"{echo.url}/x", timeout=10).status_code == 501
    assert requests.head(f"{echo.url}/x", timeout=10).status_code == 200


def test_a_bug_is_a_recorded_500_and_an_http_error_an_answer(echo: Echo) -> None:
    assert requests.get(f"{echo.url}/teapot", timeout=10).json() == {"message": "short-circuit"}
    assert echo.server_errors == []
    resp = requests.get(f"{echo.url}/boom", timeout=10)
    assert resp.status_code == 500 and resp.json() == {"error": 500}
    assert len(echo.server_errors) == 1 and "RuntimeError: a bug" in echo.server_errors[0]
    assert echo.requests_log[-1]["status"] == 500


def test_an_answer_before_the_body_is_read_closes_the_connection(echo: Echo) -> None:
    resp = requests.post(f"{echo.url}/early", data=b"unread body", timeout=10)
    assert resp.status_code == 200 and resp.headers["Connection"] == "close"
    assert requests.post(f"{echo.url}/read", data=b"body", timeout=10).headers.get("Connection") != "close"


def test_a_client_that_went_away_is_no_error(echo: Echo, capfd: pytest.CaptureFixture[str]) -> None:
    before = threading.active_count()
    url = urllib.parse.urlsplit(echo.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before, "the handler is still writing"
    assert requests.get(f"{echo.url}/still-serving", timeout=10).status_code == 200
    assert "Traceback" not in capfd.readouterr().err
    assert echo.server_errors == []


def test_serve_forever_returns_once_stopped(echo: Echo) -> None:
    stopper = threading.Timer(0.2, echo.stop)
    stopper.start()
    start = time.monotonic()
    echo.serve_forever()
    assert time.monotonic() - start < 5
    with pytest.raises(RuntimeError, match="not started"):
        _ = echo.url
