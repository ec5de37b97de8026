"""Tests of quotabar.py against a real daemon.

Run by the Go test TestPythonClient (python_test.go), which starts
`quotabar serve` with the services below and sets QUOTABAR_SOCKET:

    [services.py]   limits = ["1000 requests/1m", "100000 tokens/1m"]
    [services.one]  limits = ["1 requests/1h"]
    [services.cool] limits = ["1000 requests/1m"]
"""

import os
import socket
import tempfile
import threading
import time
import unittest

import quotabar


def service(st, name):
    return next(s for s in st["services"] if s["name"] == name)


def limit(st, name, unit):
    return next(l for l in service(st, name)["limits"] if l["unit"] == unit)


class Usage:
    """Shaped like openai's CompletionUsage."""

    def __init__(self, prompt, completion):
        self.prompt_tokens, self.completion_tokens, self.total_tokens = prompt, completion, prompt + completion


class ChatCompletion:
    """Shaped like a parsed openai ChatCompletion: usage, no HTTP."""

    def __init__(self, usage):
        self.id, self.usage = "chatcmpl-1", usage


class AnthropicUsage:
    def __init__(self, inp, out):
        self.input_tokens, self.output_tokens = inp, out


class AnthropicMessage:
    """Shaped like a parsed anthropic Message."""

    def __init__(self, usage):
        self.id, self.type, self.usage = "msg_1", "message", usage


class HTTPResponse:
    """Shaped like httpx.Response: status_code, headers, json()."""

    def __init__(self, status, headers, body):
        self.status_code, self.headers, self._body = status, headers, body

    def json(self):
        return self._body


class RawResponse:
    """Shaped like openai's with_raw_response result: wraps the httpx response."""

    def __init__(self, http_response):
        self.http_response = http_response
        self.status_code, self.headers = http_response.status_code, http_response.headers


class RateLimitError(Exception):
    """Shaped like openai.RateLimitError: status_code and the httpx response."""

    def __init__(self, response):
        super().__init__("rate limited")
        self.status_code, self.response = response.status_code, response


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.q = quotabar.Client(agent="py-test")

    def test_socket_path(self):
        self.assertEqual(quotabar.socket_path(), os.environ["QUOTABAR_SOCKET"])
        saved = os.environ.pop("QUOTABAR_SOCKET")
        try:
            os.environ["XDG_RUNTIME_DIR"] = "/run/user/1234"
            if quotabar.sys.platform != "darwin":
                self.assertEqual(quotabar.socket_path(), "/run/user/1234/quotabar/quotabar.sock")
                del os.environ["XDG_RUNTIME_DIR"]
                self.assertEqual(quotabar.socket_path(), f"/tmp/quotabar-{os.getuid()}/quotabar.sock")
        finally:
            os.environ["QUOTABAR_SOCKET"] = saved

    def test_status_and_health(self):
        self.assertTrue(self.q.health()["ok"])
        st = self.q.status()
        self.assertEqual({"py", "one", "cool"} <= {s["name"] for s in st["services"]}, True)

    def test_acquire_report_with_usage(self):
        before = limit(self.q.status(), "py", "tokens")["remaining"]
        lease = self.q.acquire("py", tokens=5000)
        self.assertTrue(lease.id)
        self.assertEqual(limit(self.q.status(), "py", "tokens")["remaining"], before - 5000)
        # The parsed openai result reports its usage: 5000 estimated, 150 used.
        lease.report(ChatCompletion(Usage(100, 50)))
        self.assertEqual(limit(self.q.status(), "py", "tokens")["remaining"], before - 150)
        self.assertEqual(service(self.q.status(), "py")["in_flight"], 0)
        with self.assertRaises(quotabar.QuotabarError):
            lease.report()

    def test_call_context_manager(self):
        before = limit(self.q.status(), "py", "tokens")["remaining"]
        with self.q.call("py", tokens=2000) as lease:
            self.assertEqual(service(self.q.status(), "py")["in_flight"], 1)
            lease.report(AnthropicMessage(AnthropicUsage(300, 20)))
        self.assertEqual(limit(self.q.status(), "py", "tokens")["remaining"], before - 320)
        # A block that never reports still ends the lease.
        with self.q.call("py"):
            pass
        self.assertEqual(service(self.q.status(), "py")["in_flight"], 0)

    def test_http_response_and_sdk_exception_teach_a_cooldown(self):
        resp = HTTPResponse(429, {"retry-after": "30", "x-ratelimit-remaining-requests": "0"}, {"error": {}})
        with self.assertRaises(RateLimitError):
            with self.q.call("cool"):
                raise RateLimitError(resp)
        st = service(self.q.status(), "cool")
        self.assertIsNotNone(st["cooldown_until"], st)
        self.assertEqual(st["in_flight"], 0)
        # The refusal is typed, with when to come back.
        with self.assertRaises(quotabar.Cooldown) as cm:
            self.q.acquire("cool", max_wait=0)
        self.assertEqual(cm.exception.reason, "cooldown")
        self.assertGreater(cm.exception.retry_after, 20)
        self.assertIsInstance(cm.exception, quotabar.Refused)

    def test_raw_response_reports_status_headers_and_usage(self):
        http = HTTPResponse(200, {"x-ratelimit-limit-requests": "1000"}, {"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
        got = quotabar.describe(RawResponse(http))
        self.assertEqual(got["status"], 200)
        self.assertEqual(got["headers"], {"x-ratelimit-limit-requests": "1000"})
        self.assertEqual(got["usage"], {"input_tokens": 7, "output_tokens": 3, "tokens": 10})
        lease = self.q.acquire("py", tokens=100)
        self.assertTrue(lease.report(RawResponse(http))["ok"])

    def test_requests_response(self):
        try:
            import requests
        except ImportError:
            self.skipTest("requests is not installed")
        r = requests.Response()
        r.status_code = 200
        r.headers["X-RateLimit-Remaining-Requests"] = "999"
        r._content = b'{"usage": {"input_tokens": 4, "output_tokens": 6}}'
        got = quotabar.describe(r)
        self.assertEqual(got, {"status": 200, "headers": {"X-RateLimit-Remaining-Requests": "999"},
                               "usage": {"input_tokens": 4, "output_tokens": 6, "tokens": 10}})

    def test_refusal(self):
        # "one" admits one request an hour; another test may have used it.
        try:
            self.q.acquire("one", max_wait=0).report()
        except quotabar.Refused:
            pass
        with self.assertRaises(quotabar.WaitTimeout) as cm:
            self.q.acquire("one", max_wait=0.2)
        self.assertEqual(cm.exception.reason, "timeout")
        self.assertGreater(cm.exception.retry_after, 0)

    def test_cancelled_wait_leaves_the_queue(self):
        # "one" admits one request an hour; test_refusal may have used it.
        try:
            self.q.acquire("one", max_wait=0).report()
        except quotabar.Refused:
            pass
        seen_queued = threading.Event()

        def watch():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not seen_queued.is_set():
                if service(self.q.status(), "one")["queued"] == 1:
                    seen_queued.set()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with self.assertRaises(quotabar.Cancelled):
            self.q.acquire("one", max_wait=60, timeout=1.0)
        watcher.join()
        self.assertTrue(seen_queued.is_set(), "the wait was never queued")
        deadline = time.monotonic() + 10
        while service(self.q.status(), "one")["queued"] != 0:
            self.assertLess(time.monotonic(), deadline, "the cancelled wait is still queued")
            time.sleep(0.01)

    def test_errors_are_typed(self):
        with self.assertRaises(quotabar.APIError) as cm:
            self.q.acquire("opneai")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "unknown_service"))
        self.assertIn("configured", cm.exception.message)
        with self.assertRaises(quotabar.APIError) as cm:
            self.q.acquire("py", priority="urgent")
        self.assertEqual(cm.exception.code, "bad_request")
        with self.assertRaises(ValueError):
            self.q.acquire("py", max_wait=601)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(quotabar.NotRunning) as cm:
                quotabar.Client(path=os.path.join(d, "none.sock")).status()
            self.assertIn("quotabar serve", str(cm.exception))

    def test_untrusted_directory_is_refused_before_sending(self):
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            with self.assertRaises(quotabar.Untrusted) as cm:
                quotabar.Client(path=os.path.join(d, "q.sock")).status()
            self.assertIn("open to other users (mode 755)", str(cm.exception))
            self.assertIn("chmod 700", str(cm.exception))

    @unittest.skipUnless(os.getuid() == 0, "needs root to serve a socket as another user")
    def test_daemon_of_another_user_is_refused(self):
        # A socket bound in this user's private directory but listened on by
        # uid nobody: its peer credentials are nobody's (Linux records the
        # credentials of the process that called listen).
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "q.sock")
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the impostor
                try:
                    os.close(ready_r)
                    os.setgid(65534)
                    os.setuid(65534)
                    srv.listen(1)
                    os.write(ready_w, b"x")
                    conn, _ = srv.accept()
                    conn.recv(1)  # until the client hangs up
                finally:
                    os._exit(0)
            srv.close()
            os.close(ready_w)
            os.read(ready_r, 1)
            os.close(ready_r)
            try:
                with self.assertRaises(quotabar.Untrusted) as cm:
                    quotabar.Client(path=path).status()
                self.assertIn("runs as uid 65534, not as you", str(cm.exception))
            finally:
                os.waitpid(pid, 0)

    def test_peer_is_this_user(self):
        # The real daemon runs as this user: the check passes and is made.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(os.environ["QUOTABAR_SOCKET"])
            self.assertEqual(quotabar._peer_uid(s), os.getuid())
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
