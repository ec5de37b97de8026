"""quotabar: ask the quotabar daemon before each rate-limited API call.

Standard library only. Copy this file next to your agent or
``pip install ./clients/python``::

    import quotabar

    q = quotabar.Client(agent="research-1")
    with q.call("openai", tokens=1200) as lease:
        response = openai_client.chat.completions.with_raw_response.create(...)
        lease.report(response)

``call`` waits (queued fairly with the other agents) until the call may go
ahead, or raises :class:`Refused` saying why not and when to try again. The
wire contract is docs/API.md.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import stat
import struct
import sys
import urllib.parse
from typing import Any, Dict, Iterator, Mapping, Optional

__all__ = [
    "Client", "Lease", "socket_path",
    "QuotabarError", "NotRunning", "Untrusted", "APIError", "Refused",
    "Cooldown", "WaitTimeout", "Paused", "Shed", "Cancelled",
]
__version__ = "0.1.0"

BUNDLE_ID = "dev.quotabar.quotabar"
_MAX_DARWIN_SOCKET_PATH = 103
_MAX_WAIT_MS = 600_000


def socket_path() -> str:
    """The daemon's socket, found as the Go client finds it (API.md, Transport)."""
    env = os.environ.get("QUOTABAR_SOCKET")
    if env:
        return env
    tmp = f"/tmp/quotabar-{os.getuid()}/quotabar.sock"
    if sys.platform == "darwin":
        home = os.path.expanduser("~")
        if not home or home == "~":
            return tmp
        p = os.path.join(home, "Library", "Application Support", BUNDLE_ID, "quotabar.sock")
        return tmp if len(p.encode()) > _MAX_DARWIN_SOCKET_PATH else p
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "quotabar", "quotabar.sock")
    return tmp


class QuotabarError(Exception):
    """Every error of this module."""


class NotRunning(QuotabarError):
    """The daemon does not answer on its socket."""

    def __init__(self, path: str, cause: BaseException):
        super().__init__(f"quotabar is not running (nothing answers on {path}: {cause}); "
                         "start it with `quotabar` or `quotabar serve`")
        self.path = path


class Untrusted(QuotabarError):
    """The socket's directory or the process serving it is not this user's
    (API.md, Transport: clients check the daemon too). Nothing was sent."""


class APIError(QuotabarError):
    """An error answer of the daemon: ``status`` (HTTP), ``code`` (API.md) and a message for a person."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"quotabar: {code} ({status}): {message}")
        self.status, self.code, self.message = status, code, message


class Refused(QuotabarError):
    """The daemon refused the call. ``reason`` is cooldown, timeout, paused or shed;
    ``retry_after`` is in seconds; ``fallback`` is the web fallback's
    ``{"enabled": ..., "open": ...}`` when the service has one."""

    reason = ""

    def __init__(self, reason: str, retry_after: float, fallback: Optional[dict]):
        super().__init__(f"quotabar refused the call: {reason}; retry after {retry_after:g}s")
        self.reason, self.retry_after, self.fallback = reason, retry_after, fallback


class Cooldown(Refused):
    """The provider said the limit is spent; every agent waits."""


class WaitTimeout(Refused):
    """No grant within max_wait."""


class Paused(Refused):
    """The person paused the service or this agent."""


class Shed(Refused):
    """The service's queue is full."""


_REFUSALS = {"cooldown": Cooldown, "timeout": WaitTimeout, "paused": Paused, "shed": Shed}


class Cancelled(QuotabarError):
    """The client gave up waiting (its own ``timeout``); the daemon withdrew the request."""


def _check_dir(path: str) -> None:
    """The socket's directory must be this user's and closed to everyone else."""
    d = os.path.dirname(path) or "."
    try:
        st = os.lstat(d)
    except FileNotFoundError as e:
        raise NotRunning(path, e) from e
    if not stat.S_ISDIR(st.st_mode):
        raise Untrusted(f"the socket directory {d} is not a directory (a symlink or file is not accepted); "
                        "remove it or set QUOTABAR_SOCKET")
    if st.st_uid != os.getuid():
        raise Untrusted(f"the socket directory {d} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): "
                        "another user may be impersonating the daemon; set QUOTABAR_SOCKET to a path in a directory of your own")
    if st.st_mode & 0o077:
        raise Untrusted(f"the socket directory {d} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); "
                        f"chmod 700 {d}, or set QUOTABAR_SOCKET to a path in a private directory")


def _peer_uid(s: socket.socket) -> Optional[int]:
    """The uid of the process serving the socket, None where it cannot be read."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        _pid, uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return uid
    if sys.platform == "darwin":  # LOCAL_PEERCRED: struct xucred {cr_version, cr_uid, ...}
        sol_local, local_peercred = 0, 1
        raw = s.getsockopt(sol_local, local_peercred, 76)
        _version, uid = struct.unpack_from("=II", raw)
        return uid
    return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]):
        super().__init__("quotabar", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        _check_dir(self._path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
            uid = _peer_uid(s)
            if uid is None:
                raise Untrusted(f"cannot read who serves {self._path} on this system, so it cannot be trusted")
            if uid != os.getuid():
                raise Untrusted(f"the process serving {self._path} runs as uid {uid}, not as you (uid {os.getuid()}): "
                                "another user may be impersonating quotabar; set QUOTABAR_SOCKET to a path in a directory of your own")
        except BaseException:
            s.close()
            raise
        self.sock = s


class Lease:
    """A granted acquire. Report it (once) when the call is done; ``call`` does it for you."""

    def __init__(self, client: "Client", body: dict, agent: str, service: str):
        self._client = client
        self.id: str = body["lease"]
        self.agent, self.service = agent, service
        self.waited: float = body.get("waited_ms", 0) / 1000
        self.expires_at: str = body.get("lease_expires_at", "")
        self.reported = False
        self.answer: Optional[dict] = None

    def report(self, response: Any = None, *, status: Optional[int] = None,
               headers: Optional[Mapping[str, str]] = None, usage: Optional[Mapping[str, int]] = None) -> dict:
        """Tell the daemon what the provider answered, and end the lease.

        ``response`` may be an openai or anthropic SDK result (a parsed one
        gives its usage; a ``with_raw_response`` one also its status and
        headers), an SDK exception such as ``openai.RateLimitError``, or an
        httpx or requests response. ``status``, ``headers`` and ``usage``
        override what it gives.
        """
        if self.reported:
            raise QuotabarError(f"lease {self.id} was already reported")
        got = describe(response) if response is not None else {}
        if status is not None:
            got["status"] = status
        if headers is not None:
            got["headers"] = dict(headers)
        if usage is not None:
            got["usage"] = dict(usage)
        self.answer = self._client.report(lease=self.id, **got)
        self.reported = True
        return self.answer


class Client:
    """A client of the daemon.

    ``agent`` is this agent's name (default: ``$QUOTABAR_AGENT``, which
    ``quotabar run`` sets). ``path`` is the socket (default: :func:`socket_path`).
    """

    def __init__(self, agent: Optional[str] = None, path: Optional[str] = None):
        self.agent = agent or os.environ.get("QUOTABAR_AGENT") or "python"
        self.path = path or socket_path()

    # The wire.

    def _request(self, method: str, url: str, body: Any = None, timeout: Optional[float] = 30.0) -> tuple:
        conn = _UnixConnection(self.path, timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise NotRunning(self.path, e) from e
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {"error": {"code": f"http_{resp.status}", "message": raw.decode(errors="replace")}}
            return resp.status, answer
        finally:
            conn.close()

    def _call(self, method: str, url: str, body: Any = None, timeout: Optional[float] = 30.0) -> dict:
        status, answer = self._request(method, url, body, timeout)
        if not 200 <= status <= 299:
            err = answer.get("error") or {}
            raise APIError(status, err.get("code", f"http_{status}"), err.get("message", ""))
        return answer

    # The API.

    def acquire(self, service: str, *, tokens: Optional[int] = None, requests: int = 1,
                input_tokens: Optional[int] = None, output_tokens: Optional[int] = None,
                priority: Optional[str] = None, max_wait: float = 60.0,
                timeout: Optional[float] = None) -> Lease:
        """Ask permission for one call and wait for it, at most ``max_wait`` seconds
        (0: answer at once, at most 600). Returns a :class:`Lease` or raises
        :class:`Refused` (one of its subclasses). ``timeout`` gives up sooner on
        this side: the connection is closed, the daemon withdraws the request,
        and :class:`Cancelled` is raised."""
        if not 0 <= max_wait * 1000 <= _MAX_WAIT_MS:
            raise ValueError(f"max_wait {max_wait!r}: use 0 to {_MAX_WAIT_MS // 1000} seconds")
        cost: Dict[str, int] = {"requests": requests}
        for unit, n in (("tokens", tokens), ("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if n is not None:
                cost[unit] = n
        body: Dict[str, Any] = {"agent": self.agent, "service": service, "cost": cost,
                                "max_wait_ms": int(max_wait * 1000)}
        if priority is not None:
            body["priority"] = priority
        # The daemon answers by max_wait; the socket waits a little longer.
        sock_timeout = max_wait + 10 if timeout is None else timeout
        try:
            status, answer = self._request("POST", "/v1/acquire", body, sock_timeout)
        except (socket.timeout, TimeoutError) as e:
            raise Cancelled(f"gave up waiting for {service} after {sock_timeout:g}s; the daemon withdrew the request") from e
        if status == 429:
            reason = answer.get("reason", "")
            cls = _REFUSALS.get(reason, Refused)
            raise cls(reason, answer.get("retry_after_ms", 0) / 1000, answer.get("fallback"))
        if not 200 <= status <= 299:
            err = answer.get("error") or {}
            raise APIError(status, err.get("code", f"http_{status}"), err.get("message", ""))
        return Lease(self, answer, self.agent, service)

    def report(self, *, lease: Optional[str] = None, service: Optional[str] = None,
               status: Optional[int] = None, headers: Optional[Mapping[str, str]] = None,
               usage: Optional[Mapping[str, int]] = None) -> dict:
        """Report a call: with ``lease`` it ends that lease; without, ``service``
        names a call made without asking (an observation)."""
        body: Dict[str, Any] = {}
        if lease:
            body["lease"] = lease
        else:
            if not service:
                raise ValueError("report needs a lease, or a service for a call made without one")
            body["agent"], body["service"] = self.agent, service
        if status:
            body["status"] = int(status)
        if headers:
            body["headers"] = {str(k): str(v) for k, v in headers.items()}
        if usage:
            body["usage"] = {k: int(v) for k, v in usage.items()}
        return self._call("POST", "/v1/report", body)

    def status(self) -> dict:
        """Every service and agent (the /v1/status body)."""
        return self._call("GET", "/v1/status")

    def health(self) -> dict:
        return self._call("GET", "/v1/health", timeout=5)

    def open_fallback(self, service: str) -> dict:
        """Open the service's web interface; returns how to drive it (cdp_url, ...)."""
        return self._call("POST", f"/v1/services/{urllib.parse.quote(service, safe='')}/fallback/open", {"agent": self.agent})

    @contextlib.contextmanager
    def call(self, service: str, **acquire_args: Any) -> Iterator[Lease]:
        """Acquire, yield the lease, and make sure it is reported.

        Report the provider's answer with ``lease.report(response)`` inside
        the block. If the block raises, the lease is reported with what the
        exception carries (an SDK's ``status_code`` and ``response``), so a
        429 still teaches the daemon; if the block just ends, the lease is
        ended with nothing to add.
        """
        lease = self.acquire(service, **acquire_args)
        try:
            yield lease
        except BaseException as e:
            if not lease.reported:
                with contextlib.suppress(QuotabarError):
                    lease.report(e)
            raise
        else:
            if not lease.reported:
                lease.report()


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _headers(h: Any) -> Optional[Dict[str, str]]:
    if h is None:
        return None
    items = h.items() if hasattr(h, "items") else h
    try:
        return {str(k): str(v) for k, v in items}
    except (TypeError, ValueError):
        return None


def _usage(u: Any) -> Optional[Dict[str, int]]:
    if u is None:
        return None
    out: Dict[str, int] = {}
    inp = _get(u, "input_tokens")
    if inp is None:
        inp = _get(u, "prompt_tokens")
    outp = _get(u, "output_tokens")
    if outp is None:
        outp = _get(u, "completion_tokens")
    total = _get(u, "total_tokens")
    if isinstance(inp, int):
        out["input_tokens"] = inp
    if isinstance(outp, int):
        out["output_tokens"] = outp
    if isinstance(total, int):
        out["tokens"] = total
    elif isinstance(inp, int) or isinstance(outp, int):
        out["tokens"] = (inp or 0) + (outp or 0)
    return out or None


def describe(response: Any) -> Dict[str, Any]:
    """What a report says of ``response``: ``status``, ``headers`` and ``usage``
    as far as it carries them. Understands openai and anthropic SDK results
    and raw responses, their exceptions, and httpx and requests responses."""
    got: Dict[str, Any] = {}
    # An SDK exception or raw response wraps the HTTP response.
    http_resp = _get(response, "http_response")
    if http_resp is None and isinstance(response, BaseException):
        http_resp = _get(response, "response")
    for source in (response, http_resp):
        if source is None:
            continue
        status = _get(source, "status_code")
        if status is None and not isinstance(source, Mapping):
            status = _get(source, "status")
        if isinstance(status, int) and "status" not in got:
            got["status"] = status
        h = _headers(_get(source, "headers"))
        if h and "headers" not in got:
            got["headers"] = h
    # The usage: on a parsed SDK result, on a raw one once parsed, or in
    # the JSON body of an HTTP response.
    usage = None if isinstance(response, BaseException) else _usage(_get(response, "usage"))
    if usage is None and not isinstance(response, BaseException):
        body = None
        for source in (response, http_resp):
            js = getattr(source, "json", None)
            if callable(js):
                with contextlib.suppress(Exception):
                    body = js()
                    break
        if isinstance(body, Mapping):
            usage = _usage(body.get("usage"))
    if usage:
        got["usage"] = usage
    return got
