"""`make changes` follows a running stack's change stream: a receipt sent through the webhook
shows as its line, and Ctrl-C removes the follower's subscription."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.api_core.exceptions import NotFound
from google.cloud.pubsub_v1 import SubscriberClient

from tests.integration.conftest import PROCESSING_TIMEOUT, send
from tools.local.main import STATE_FILE, describe
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm_payloads
from tools.topology import ROOT

pytestmark = pytest.mark.integration

SUBSCRIBED = re.compile(r"following \S+ through (\S+) \(times in UTC\); Ctrl-C stops")


def test_a_receipt_shows_as_its_line_and_ctrl_c_removes_the_subscription(
    stack: LocalStack, tmp_path: Path
) -> None:
    local_dir = tmp_path / "local"  # as `make local` would leave it: its state file
    local_dir.mkdir()
    (local_dir / STATE_FILE.name).write_text(json.dumps(describe(stack)))
    output = tmp_path / "changes.txt"
    with output.open("wb") as sink:
        follower = subprocess.Popen(
            [sys.executable, "-m", "tools.local.changes"],
            cwd=ROOT,
            env={**os.environ, "RECEIPT_PIPELINE_LOCAL_DIR": str(local_dir)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def shown(pattern: str) -> re.Match[str] | None:
            assert follower.poll() is None, f"exited early:\n{output.read_text()}"
            return re.search(pattern, output.read_text())

        subscribed = wait_until(lambda: shown(SUBSCRIBED.pattern), 60, "the follower's start")
        assert isinstance(subscribed, re.Match)
        subscription = subscribed.group(1)
        message = f"follow-{uuid.uuid4().hex[:8]}"
        receipt = bm_payloads.receipts(f"conversation-{message}", (message, "DELIVERED"))
        body = bm_payloads.encode(receipt)
        assert send(stack, body).status_code == 200

        expected = rf"\d\d:\d\d:\d\d  message\.status +bm +{message} +DELIVERED \(rank \d+\)"
        wait_until(lambda: shown(expected + "\n"), PROCESSING_TIMEOUT, "the receipt's line")
        # Google redelivers the same body: the recorder publishes its change again, same id.
        assert send(stack, body).status_code == 200
        again = expected + r"  \(again: the same id\)\n"
        wait_until(lambda: shown(again), PROCESSING_TIMEOUT, "the repeat's line")

        follower.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert follower.wait(30) == 128 + signal.SIGINT, output.read_text()
        assert "Traceback" not in output.read_text()
        with pytest.raises(NotFound):
            SubscriberClient().get_subscription(subscription=subscription)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
