"""A stand-in's HTTP server: threaded, on a loopback port, stopped at once."""

from __future__ import annotations

import functools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Serves a handler class on 127.0.0.1 (any free port by default) from a daemon thread."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        # A short poll so stop() returns at once: tests start and stop one per test.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def address(self) -> str:
        """host:port"""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
