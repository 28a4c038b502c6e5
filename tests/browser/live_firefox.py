"""Headless Firefox driven over WebDriver BiDi, for ``tests/test_live_parity.py``.

Debian's ``firefox-esr`` speaks WebDriver BiDi itself (``--remote-debugging-port``): no
geckodriver and no browser download. The port is 0 (the browser picks a free one and writes it to
``WebDriverBiDiServer.json`` in its profile); the protocol is JSON over a WebSocket, spoken with
``websocket-client`` (pinned in ``requirements-lock.txt``, a dependency of Jupyter's server).

:meth:`Firefox.open_page` opens one page in a new tab, evaluates an expression in it and answers
as the Chromium driver of ``tests/test_live_parity.py`` does: ``(value, problems)``, problems being
console errors, uncaught exceptions, failed and external requests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("browser_replies", Path(__file__).with_name("replies.py"))
replies = importlib.util.module_from_spec(_spec)  # the command/reply bookkeeping of both drivers
_spec.loader.exec_module(replies)

FIREFOX_CANDIDATES = ("firefox-esr", "firefox")
# Besides the remote agent's own recommended preferences: nothing fetched from outside, no
# first-run pages, and no throttling of a background tab's timers.
PREFS = {
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "extensions.update.enabled": False,
    "dom.timeout.enable_budget_timer_throttling": False,
}
EVENTS = ("log.entryAdded", "network.beforeRequestSent", "network.responseCompleted",
          "network.fetchError")


class FirefoxUnavailable(RuntimeError):
    """No Firefox could be started or spoken to."""


def find_firefox() -> str | None:
    """The Firefox to run: ``$FIREFOX``, else ``firefox-esr`` or ``firefox`` on the PATH."""
    for name in (os.environ.get("FIREFOX", ""), *FIREFOX_CANDIDATES):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


class Firefox:
    """A headless Firefox with a fresh profile, spoken to over WebDriver BiDi."""

    def __init__(self, executable: str, width: int, height: int, start_timeout: float = 60.0):
        try:
            import websocket  # websocket-client
        except ImportError as exc:
            raise FirefoxUnavailable("websocket-client is not installed") from exc
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="live-firefox-profile-"))
        (self.profile / "user.js").write_text(
            "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in PREFS.items()))
        self.log = open(self.profile.with_suffix(".log"), "wb")
        env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"}
        try:
            self.proc = subprocess.Popen(
                [executable, "--headless", "--no-remote", "--profile", str(self.profile),
                 "--remote-debugging-port=0", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        except OSError as exc:
            self._cleanup()
            raise FirefoxUnavailable(f"cannot start {executable}: {exc}") from exc
        self.replies = replies.Replies()
        self.events: queue.Queue = queue.Queue()
        try:
            port = self._port(start_timeout)
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/session",
                                                  suppress_origin=True, timeout=start_timeout)
            self.ws.settimeout(None)
            threading.Thread(target=self._read, daemon=True).start()
            caps = self.call("session.new", {"capabilities": {}})["capabilities"]
            self.version = f"{caps['browserName']} {caps['browserVersion']}"
            self.call("session.subscribe", {"events": list(EVENTS)})
        except Exception as exc:
            self.close()
            raise FirefoxUnavailable(f"{executable} did not answer over WebDriver BiDi: {exc}") from exc

    def _port(self, timeout: float) -> int:
        info = self.profile / "WebDriverBiDiServer.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FirefoxUnavailable(f"firefox exited with status {self.proc.returncode}")
            try:
                return int(json.loads(info.read_text())["ws_port"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise FirefoxUnavailable(f"no WebDriver BiDi port within {timeout:.0f} s")

    def _read(self) -> None:
        while True:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:  # closed
                self.replies.fail_all({"type": "error", "error": "closed",
                                       "message": "the browser has gone"})
                return
            if msg.get("type") == "event":
                self.events.put(msg)
            elif "id" in msg:
                self.replies.deliver(msg["id"], msg)

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        def send(msg_id: int) -> None:
            self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))

        reply = self.replies.request(method, send, timeout)
        if reply.get("type") == "error":
            raise RuntimeError(f"{method}: {reply.get('error')}: {reply.get('message')}")
        return reply.get("result", {})

    def open_page(self, base: str, page: str, expression: str,
                  timeout: float = 240.0) -> tuple[object, list[str]]:
        """Open ``base + page`` in a new tab, evaluate the (async) ``expression`` in it; returns
        ``(value, problems)``. The value travels as JSON (``JSON.stringify``)."""
        context = self.call("browsingContext.create", {"type": "tab"})["context"]
        try:
            self.call("browsingContext.setViewport", {
                "context": context, "viewport": {"width": self.width, "height": self.height}})
            while not self.events.empty():  # what came before this page is not its own
                self.events.get_nowait()
            self.call("browsingContext.navigate",
                      {"context": context, "url": base + page, "wait": "complete"})
            res = self.call("script.evaluate", {
                "expression": f"Promise.resolve({expression}).then((v) => JSON.stringify(v))",
                "target": {"context": context}, "awaitPromise": True}, timeout=timeout)
        finally:
            self.call("browsingContext.close", {"context": context})
        events = []
        while not self.events.empty():
            events.append(self.events.get_nowait())
        if res.get("type") == "exception":
            d = res["exceptionDetails"]
            raise AssertionError(d.get("text") or json.dumps(d.get("exception"))[:300])
        problems = []
        for ev in events:
            m, p = ev["method"], ev.get("params", {})
            if m == "log.entryAdded" and p.get("level") == "error":
                problems.append(f"{p.get('type')} error: {p.get('text')}")
            elif m == "network.beforeRequestSent":
                url = p["request"]["url"]
                if not url.startswith((base, "data:", "blob:", "about:")):
                    problems.append(f"external request: {url}")
            elif m == "network.responseCompleted" and p["response"]["status"] >= 400:
                problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif m == "network.fetchError":
                problems.append(f"failed request: {p['request']['url']}: {p.get('errorText')}")
        return json.loads(res["result"].get("value", "null")), problems

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.call("browser.close", {}, timeout=10)
                except Exception:
                    pass
                self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._cleanup()

    def _cleanup(self) -> None:
        if hasattr(self, "log"):
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)
        shutil.rmtree(self.profile, ignore_errors=True)
