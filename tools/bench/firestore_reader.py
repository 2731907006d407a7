"""A reader of the Firestore emulator in a process of its own: when did each document become
readable? `make bench`'s end-to-end latency asks it (tools/bench/latency.py).

It polls: every POLL_INTERVAL it reads, in one batch read, the documents it was told to
watch and has not yet seen with their field, and notes the time (time.monotonic(), which on
Linux is one clock for every process) at which each is first read with it. A document is
therefore seen at most one interval and one batch read after a reader could read it; the
bench measures that resolution with writes of its own.

Why not a snapshot listener: on the emulator, an open listener made every write cost it
27-60 ms of CPU at 150 writes/s (1.5 ms without one), so writes fell seconds behind; the
batch reads cost it ~1 ms per write and saw a write within ~5 ms (p50).

    python -m tools.bench.firestore_reader --port P     (with FIRESTORE_EMULATOR_HOST set)

GET / answers once it serves. POST /watch {"documents": [[path, field, from], ...]} watches
each document from its time `from` (when it is sent) on; POST /seen {"paths": [...],
"timeout": s} waits until all are seen or the timeout passes, and answers
{"seen": {path: time}} for those seen.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.cloud import firestore

from tools.standins.loopback import send_json

POLL_INTERVAL = 0.002
# At most this many documents in one batch read; a longer backlog is read in turns, so the
# reader never loads the emulator with reads of thousands of documents at once.
MAX_PER_READ = 300


class Reader:
    def __init__(self, db: firestore.Client) -> None:
        self._db = db
        self._upcoming: list[tuple[float, str, str]] = []  # (from, path, field), latest first
        self._watched: dict[str, str] = {}  # path -> the field it must hold, not yet seen
        self._seen: dict[str, float] = {}
        self._turn = 0  # where the next batch read starts in a long backlog
        self._changed = threading.Condition()

    def watch(self, documents: list[tuple[str, str, float]]) -> None:
        with self._changed:
            self._upcoming += [(since, path, field) for path, field, since in documents]
            self._upcoming.sort(reverse=True)
            self._changed.notify_all()

    def seen(self, paths: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(path in self._seen for path in paths):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return {path: self._seen[path] for path in paths if path in self._seen}

    def poll_forever(self) -> None:
        while True:
            with self._changed:
                self._take_due()
                while not self._watched:
                    self._changed.wait(self._until_next())
                    self._take_due()
                batch = self._next_batch()
            found = self._read(batch)
            with self._changed:
                for path, at in found.items():
                    self._seen.setdefault(path, at)
                    self._watched.pop(path, None)
                if found:
                    self._changed.notify_all()
            time.sleep(POLL_INTERVAL)  # the polling interval itself: the reader's resolution

    def _take_due(self) -> None:
        now = time.monotonic()
        while self._upcoming and self._upcoming[-1][0] <= now:
            _, path, field = self._upcoming.pop()
            if path not in self._seen:
                self._watched[path] = field

    def _until_next(self) -> float | None:
        """How long until the next document is due; None: none is."""
        return max(0.0, self._upcoming[-1][0] - time.monotonic()) if self._upcoming else None

    def _next_batch(self) -> dict[str, str]:
        paths = list(self._watched)
        if len(paths) <= MAX_PER_READ:
            return dict(self._watched)
        start = self._turn % len(paths)
        self._turn = start + MAX_PER_READ
        chosen = (paths[start:] + paths[:start])[:MAX_PER_READ]
        return {path: self._watched[path] for path in chosen}

    def _read(self, batch: Mapping[str, str]) -> dict[str, float]:
        found: dict[str, float] = {}
        for field in set(batch.values()):
            refs = [self._db.document(path) for path, wanted in batch.items() if wanted == field]
            for snapshot in self._db.get_all(refs, field_paths=[field]):
                if snapshot.exists and _holds(snapshot.to_dict() or {}, field):
                    found[snapshot.reference.path] = time.monotonic()
        return found


def _holds(document: Mapping[str, Any], field: str) -> bool:
    value: Any = document
    for name in field.split("."):
        if not isinstance(value, Mapping) or name not in value:
            return False
        value = value[name]
    return True


def _handler_for(reader: Reader) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send_json(self, 200, {"serving": True})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if self.path == "/watch":
                documents = request["documents"]
                reader.watch([(str(path), str(field), float(at)) for path, field, at in documents])
                send_json(self, 200, {"watching": len(request["documents"])})
            elif self.path == "/seen":
                paths = [str(path) for path in request["paths"]]
                send_json(self, 200, {"seen": reader.seen(paths, float(request["timeout"]))})
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the bench reads answers, not access logs

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    reader = Reader(firestore.Client())
    threading.Thread(target=reader.poll_forever, name="poll", daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), _handler_for(reader))
    server.daemon_threads = True
    server.serve_forever()  # until the bench stops this process's group


if __name__ == "__main__":
    main()
