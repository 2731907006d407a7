"""A page as a browser shows it: Debian's Chromium, headless, driven over the DevTools protocol.

`make test` installs Chromium when it is missing (the Makefile's /usr/bin/chromium target).
The browser runs in a process group of its own with a fresh profile, and is stopped by that
group's id (`ManagedProcess`), whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import requests

from tools.local.procs import ManagedProcess, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox will not start
    "--disable-gpu",
    "--no-first-run",
    # Nothing of its own to fetch (updates, sync, field trials, QUIC probes): this machine's
    # network is closed, and the refused connections would only slow the browser down.
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REPLY_SECONDS = 30


class Page:
    """The one page the browser opened."""

    def __init__(self, socket_url: str, browser_pid: int) -> None:
        self._socket_url = socket_url
        self.browser_pid = browser_pid  # and its process group's id

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        reply = asyncio.run(
            self._call("Runtime.evaluate", expression=expression, returnByValue=True)
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} raised {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        timeout = aiohttp.ClientWSTimeout(ws_receive=REPLY_SECONDS)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self._socket_url, timeout=timeout) as socket,
        ):
            await socket.send_json({"id": 1, "method": method, "params": params})
            while True:  # events the page sends meanwhile have no id
                message = await socket.receive_json()
                if message.get("id") == 1:
                    result: dict[str, Any] = message["result"]
                    return result


@contextlib.contextmanager
def open_page(url: str, timeout: float = 60) -> Iterator[Page]:
    """Chromium showing `url`, loaded; stopped on leaving the block."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: `make integration` installs it")
    with tempfile.TemporaryDirectory(prefix="chromium-") as work:
        port = free_port()
        command = [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={Path(work) / 'profile'}",
            f"--remote-debugging-port={port}",
            url,
        ]
        browser = ManagedProcess("chromium", command, lambda: os.environ, Path(work))
        try:
            browser.start(f"http://127.0.0.1:{port}/json/version", timeout)
            assert browser.pid is not None
            page = Page(_page_socket(port, url, timeout), browser.pid)
            # The browser opens about:blank first: wait for this very document to have loaded.
            loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
            wait_until(lambda: page.evaluate(loaded), timeout, f"{url} to load")
            yield page
        finally:
            browser.stop()


def _page_socket(port: int, url: str, timeout: float) -> str:
    def opened() -> str | None:
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        pages = [t["webSocketDebuggerUrl"] for t in targets if t.get("url") == url]
        return pages[0] if pages else None

    return str(wait_until(opened, timeout, f"Chromium's tab of {url}"))
