"""A headless Chromium driven over the DevTools protocol, for the docs page's browser tests.

`--remote-debugging-pipe`: Chromium reads commands from fd 3 and writes answers and events
to fd 4, each a JSON message ended by a NUL byte; no websocket library, no port. Enough of
the protocol for a test: open a page, evaluate JavaScript, dispatch real mouse events
(Input.dispatchMouseEvent, as a user's click: the browser hit-tests the point) and take a
screenshot. Waits poll the page with wide limits (the machine is shared); none is a sleep.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe"]
WAIT = 180.0  # seconds: only a broken page takes that long (the machine is shared)


class Browser:
    """One Chromium process with one page (a target attached in flat mode)."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 900) -> None:
        assert CHROMIUM is not None
        to_child, self._out = os.pipe()    # we write commands; the child reads fd 3
        self._in, from_child = os.pipe()   # the child writes fd 4; we read

        def fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            read, write = os.dup(to_child), os.dup(from_child)
            os.dup2(read, 3)
            os.dup2(write, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"], preexec_fn=fds, close_fds=False, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._next = 0
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._in, 65536):
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        box = self._answers.get(msg["id"])
                    if box is not None:
                        box.put(msg)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            ident = self._next
            box: queue.Queue[dict[str, Any]] = queue.Queue()
            self._answers[ident] = box
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        answer = box.get(timeout=WAIT)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """Poll until the expression is truthy (its value), at most WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            value = self.js(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.05)  # polling interval, not synchronisation

    def open(self, url: str) -> None:
        self.send("Page.navigate", session=True, url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && "
                      "document.readyState === 'complete'")

    def click(self, selector: str) -> tuple[float, float]:
        """A real left click at the centre of the element (scrolled into view first)."""
        box = self.wait_for(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); if (!el) "
            "return null; el.scrollIntoView({block: 'center'}); const r = "
            "el.getBoundingClientRect(); return r.width && r.height ? "
            "{x: r.x + r.width / 2, y: r.y + r.height / 2} : null; })()")
        x, y = box["x"], box["y"]
        self.send("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y,
                      button="left", buttons=1 if kind == "mousePressed" else 0, clickCount=1)
        return x, y

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, queue.Empty, OSError):
            pass
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)
