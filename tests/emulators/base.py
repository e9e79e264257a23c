"""The HTTP base the emulators share (``zenodo.py``, ``github.py``).

:class:`HTTPEmulator` owns what every emulator does the same way: a threaded HTTP/1.1 server
(keep-alive) and its lifecycle, the request pipeline (log every request with its secrets
redacted, record a token in a URL as a violation, answer a bug with a 500 and record it, close
a connection whose request body was not read), fault matching, and the command line's serving
loop.  An emulator subclass says what is its own:

- ``request_type``: :class:`Request` or a subclass (e.g. with the emulator's JSON parsing),
  the type parameter of ``HTTPEmulator[...]`` too; ``server_header``, ``methods`` (others
  answer 501), ``thread_name``, ``json_content_type``;
- :meth:`HTTPEmulator._respond` and :meth:`HTTPEmulator._error_answer` (required): the answer
  to one request, and its own error shape;
- optional hooks: :meth:`~HTTPEmulator._route_path`, :meth:`~HTTPEmulator._secrets`,
  :meth:`~HTTPEmulator._log_extra`, :meth:`~HTTPEmulator._response_headers`.

A route short-circuits with ``raise HTTPError(response)``; reading a body whose client went away
raises :class:`Dropped` (the connection is closed without an answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http
import http.server
import json
import re
import shutil
import signal
import socket
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "Dropped",
    "Fault",
    "HTTPEmulator",
    "HTTPError",
    "Request",
    "Response",
    "Rule",
    "RuleQueue",
    "dropped",
    "json_response",
    "phrase",
]

CHUNK = 1024 * 1024


# --------------------------------------------------------------------------- responses


@dataclasses.dataclass
class Response:
    """An answer: ``status``, ``body`` (or a ``file`` of ``file_size`` bytes streamed as the
    body), ``content_type`` and more ``headers``; ``drop`` closes the connection unanswered."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    drop: bool = False
    file: Path | None = None
    file_size: int = 0


def dropped() -> Response:
    """No answer: the connection is closed."""
    return Response(0, drop=True)


def json_response(
    status: int, obj: Any, headers: Iterable[tuple[str, str]] = (), *, content_type: str = "application/json"
) -> Response:
    """A JSON answer (compact, UTF-8)."""
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, content_type, list(headers))


def phrase(status: int) -> str:
    """The reason phrase of ``status`` (``"Error"`` for a code http.HTTPStatus does not know)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class HTTPError(Exception):
    """Raised by a route to answer ``response`` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Dropped(Exception):
    """The connection is to be dropped without an answer (the client went away mid-body, or a
    fault says so)."""


# --------------------------------------------------------------------------- requests


class Request:
    """One request: ``method``, ``target`` (as sent), ``path`` (as routed: see
    :meth:`HTTPEmulator._route_path`), ``query``/``raw_query`` and ``headers``.  The body is read
    on demand, streamed (:meth:`iter_body`) or whole (:meth:`body`), plain or chunked."""

    def __init__(self, handler: _Handler, path: str) -> None:
        self.method = handler.command
        self.target = handler.path
        self.path = path
        self.raw_query = urllib.parse.urlsplit(self.target).query
        self.query = urllib.parse.parse_qs(self.raw_query, keep_blank_values=True)
        self.headers = handler.headers  # email.message.Message: case-insensitive .get()
        self.chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self.bytes_read = 0
        self.body_consumed = False
        self._rfile = handler.rfile
        self._body: bytes | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    def iter_body(self, limit: int | None = None) -> Iterator[bytes]:
        """The body in chunks; with ``limit``, stop after that many bytes (for a drop).
        Raises :class:`Dropped` when the client closes the connection before its end."""
        if self.body_consumed:
            return
        if self.chunked:
            while True:
                size = int(self._rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self._rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self._rfile.read(size)
                self._rfile.readline()
                self.bytes_read += len(data)
                yield data
                if limit is not None and self.bytes_read >= limit:
                    return
            self.body_consumed = True
            return
        remaining = self.content_length() or 0
        while remaining > 0:
            want = min(CHUNK, remaining)
            if limit is not None:
                want = min(want, max(limit - self.bytes_read, 0))
                if want == 0:
                    return
            data = self._rfile.read(want)
            if not data:
                raise Dropped()
            remaining -= len(data)
            self.bytes_read += len(data)
            yield data
        self.body_consumed = True

    def body(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._body is None:
            self._body = b"".join(self.iter_body())
            self.body_consumed = True
        return self._body

    def discard_body(self) -> None:
        """Read and forget the body, so the connection can serve the next request."""
        for _ in self.iter_body():
            pass
        self.body_consumed = True


# --------------------------------------------------------------------------- faults


@dataclasses.dataclass
class Rule:
    """Which requests a test control applies to: ``method`` (any when ``None``), paths starting
    with ``path_prefix`` (any when ``None``), the next ``times`` of them after letting ``after``
    through."""

    method: str | None
    path_prefix: str | None
    times: int
    after: int

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("times must be at least 1")

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def consume(self) -> bool:
        """Count one matching request: whether the rule applies to it."""
        if self.after > 0:
            self.after -= 1
            return False
        self.times -= 1
        return True


@dataclasses.dataclass
class Fault(Rule):
    """An injected failure: answer ``status`` (with ``body`` as JSON when given, else the
    emulator's own body for it; ``retry_after`` adds ``Retry-After``), or drop the connection."""

    status: int | None
    retry_after: int | None = None
    body: Any = None
    drop_connection: bool = False


_R = TypeVar("_R", bound=Rule)


class RuleQueue(Generic[_R]):
    """Rules in the order they were added; a matching request uses them up (thread-safe)."""

    def __init__(self) -> None:
        self._rules: list[_R] = []
        self._lock = threading.Lock()

    def add(self, rule: _R) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> _R | None:
        """The first rule matching the request, if it applies to it (its ``after`` used up)."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(method, path)), None)
            if rule is None or not rule.consume():
                return None
            self._drop_spent(rule)
            return rule

    def take_all(self, method: str, path: str) -> list[_R]:
        """Every rule matching the request that applies to it."""
        with self._lock:
            due = [r for r in self._rules if r.matches(method, path) and r.consume()]
            for rule in due:
                self._drop_spent(rule)
            return due

    def _drop_spent(self, rule: _R) -> None:
        if rule.times <= 0:
            self._rules.remove(rule)


# --------------------------------------------------------------------------- the emulator

_Q = TypeVar("_Q", bound=Request)
_E = TypeVar("_E", bound="HTTPEmulator[Any]")
_ACCESS_TOKEN = re.compile(r"(?i)((?:^|[?&])access_token=)[^&#]*")


class HTTPEmulator(Generic[_Q]):
    """A stateful HTTP API emulator served by a threaded HTTP/1.1 server (see the module doc).

    Attributes:
        requests_log: every request: ``method``, ``path`` (as received), ``query``, ``headers``
            (lower-case names; ``authorization`` and every secret redacted), ``status`` (``None``
            while in flight and when dropped), and the emulator's :meth:`_log_extra` fields.
        token_in_url_violations: redacted URLs that carried a secret or ``access_token``.
        server_errors: tracebacks of unexpected exceptions (answered with 500).
    """

    server_header: ClassVar[str] = "emulator"
    methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD"})
    thread_name: ClassVar[str] = "http-emulator"
    json_content_type: ClassVar[str] = "application/json"
    request_type: type[_Q]

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.requests_log: list[dict[str, Any]] = []
        self.token_in_url_violations: list[str] = []
        self.server_errors: list[str] = []
        self._lock = threading.RLock()
        self._faults: RuleQueue[Any] = RuleQueue()  # of the emulator's Fault (sub)class
        self._stopping = threading.Event()  # set by stop(): ends waits inside requests
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (available once bound)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def bind(self: _E) -> _E:
        """Open the listening socket without serving yet (``start`` calls it)."""
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
        return self

    def start(self: _E) -> _E:
        """Serve in a daemon thread; returns ``self``."""
        self._stopping.clear()
        server = self.bind()._server
        assert server is not None
        if self._thread is None:
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called (by another thread or a signal handler)."""
        self.start()
        self._stopping.wait()

    def serve_until_signalled(self) -> int:
        """The command line: serve, print ``listening on URL``, stop on SIGTERM or SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        print(f"listening on {self.start().url}", flush=True)
        self.serve_forever()
        return 0

    def stop(self) -> None:
        """Stop serving and close the listening socket (a request waiting inside ends)."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        server.server_close()

    def __enter__(self: _E) -> _E:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ test controls
    def clear_faults(self) -> None:
        """Forget every injected fault not used up yet."""
        self._faults.clear()

    def assert_no_token_in_urls(self) -> None:
        """Raise ``AssertionError`` when any request carried a token in its URL."""
        if self.token_in_url_violations:
            raise AssertionError(f"token in URL: {self.token_in_url_violations}")

    # ------------------------------------------------------------ hooks
    def _respond(self, req: _Q) -> Response:
        """The answer to ``req`` (may raise :class:`HTTPError` or :class:`Dropped`)."""
        raise NotImplementedError

    def _route_path(self, path: str) -> str:
        """The path routes and faults see: without trailing slashes."""
        return path.rstrip("/") or "/"

    def _secrets(self) -> Iterable[str]:
        """Tokens that must never appear in a URL or a log."""
        return ()

    def _log_extra(self, req: _Q) -> dict[str, Any]:
        """More ``requests_log`` fields (read when the request arrives and once answered)."""
        return {}

    def _response_headers(self, req: _Q) -> list[tuple[str, str]]:
        """Headers every answer to ``req`` carries (after the response's own)."""
        return []

    def _error_answer(self, status: int, req: _Q, fault: Fault | None) -> Response:
        """The emulator's own answer with ``status``: to an injected ``fault`` without a ``body``,
        or (500, ``fault=None``) when :meth:`_respond` raised an unexpected exception.  Reading
        the request body here is not safe (it may be what failed)."""
        raise NotImplementedError

    # ------------------------------------------------------------ request pipeline
    def _fault_response(self, fault: Fault, req: _Q) -> Response:
        """The answer to ``fault`` (the request body is not read here)."""
        if fault.drop_connection:
            return dropped()
        status = fault.status or 500
        if fault.body is not None:
            resp = json_response(status, fault.body, content_type=self.json_content_type)
        else:
            resp = self._error_answer(status, req, fault)
        if fault.retry_after is not None:
            resp.headers.append(("Retry-After", str(fault.retry_after)))
        return resp

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
                text = text.replace(form, "***")
        return _ACCESS_TOKEN.sub(r"\1***", text)

    def _record(self, req: _Q) -> dict[str, Any]:
        """Log ``req`` (redacted); a secret or ``access_token`` in its URL is a violation."""
        redacted = self._redact(req.target)
        headers: dict[str, str] = {}
        for name, value in req.headers.items():
            key = name.lower()
            if key == "authorization":
                scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
                value = f"{scheme} ***".strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        split = urllib.parse.urlsplit(redacted)
        entry: dict[str, Any] = {
            "method": req.method,
            "path": split.path,
            "query": urllib.parse.parse_qs(split.query, keep_blank_values=True),
            "headers": headers,
            "status": None,
            **self._log_extra(req),
        }
        unquoted = urllib.parse.unquote_plus(req.target)
        in_url = any(secret and (secret in req.target or secret in unquoted) for secret in self._secrets())
        with self._lock:
            self.requests_log.append(entry)
            if in_url or any(k.lower() == "access_token" for k in req.query):
                self.token_in_url_violations.append(redacted)
        return entry

    def _serve(self, handler: _Handler) -> None:
        """Serve one request on ``handler`` (called by the HTTP adapter)."""
        req = self.request_type(handler, self._route_path(urllib.parse.urlsplit(handler.path).path))
        entry = self._record(req)
        try:
            resp = self._respond(req)
        except HTTPError as err:
            resp = err.response
        except Dropped:
            resp = dropped()
        except Exception:
            self.server_errors.append(traceback.format_exc())
            traceback.print_exc(file=sys.stderr)
            resp = self._error_answer(500, req, None)
        entry.update(self._log_extra(req))
        entry["status"] = None if resp.drop else resp.status
        if not resp.drop:
            if not req.body_consumed:
                # Answering before the body was read: the connection cannot be reused.
                handler.close_connection = True
                resp.headers.append(("Connection", "close"))
            resp.headers += self._response_headers(req)
        handler.send(resp)


# --------------------------------------------------------------------------- HTTP adapter


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: HTTPEmulator[Any]) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(http.server.BaseHTTPRequestHandler):
    """Thin HTTP/1.1 adapter (keep-alive) around :meth:`HTTPEmulator._serve`."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def __getattr__(self, name: str) -> Any:
        # http.server serves a request with `do_<METHOD>` (none: 501 Unsupported method).
        if name.startswith("do_") and name[3:] in self.server.emulator.methods:
            return self._serve
        raise AttributeError(name)

    def version_string(self) -> str:
        return self.server.emulator.server_header

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        self.server.emulator._serve(self)

    def send(self, resp: Response) -> None:
        """Write ``resp``, or drop the connection; a client that went away is no error."""
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(resp.status)
            if resp.status != 204:
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(resp.file_size if resp.file is not None else len(resp.body)))
            for name, value in resp.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD" or resp.status == 204:
                return
            if resp.file is not None:
                with open(resp.file, "rb") as f:
                    shutil.copyfileobj(f, self.wfile, CHUNK)
            else:
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its read timeout) before the answer was written.
            self.close_connection = True
