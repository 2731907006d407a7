"""`make demo` plays its conversation through the stack and shows what landed."""

import re

import pytest

from tests.integration.conftest import DemoRun

pytestmark = pytest.mark.integration


def test_the_demo_conversation_lands_as_shown(demo_run: DemoRun) -> None:
    shown = demo_run.shown
    assert "-> 200 'demo-secret'" in shown
    assert "a request signed with the wrong key                  -> 401" in shown
    assert "receipts: 6 unique" in shown
    parked = "parked: REJECTED_RECEIPT: 1 of 2 elements set aside: 1x receiptType is "
    assert parked + "RECEIPT_TYPE_UNSPECIFIED" in shown
    assert shown.count("/receipt -> 200") == 2
    rows = [line.split() for line in shown.splitlines() if line.startswith("  agent-")]
    # Pub/Sub does not keep order: the rows follow processing, so compare them as a set.
    assert sorted((row[0], row[2]) for row in rows) == [
        ("agent-1", "READ"),
        ("agent-2", "READ"),
        ("agent-3", "READ"),
    ]
    # The RCS Business Messaging part of the demo.
    assert "a request signed with the wrong client token         -> 401" in shown
    assert "user is typing: acknowledged, not stored             -> 200" in shown
    rbm_rows = [line.split() for line in shown.splitlines() if line.startswith("  reply-")]
    assert [row[2] for row in rbm_rows] == ["READ"]
    events = [line for line in shown.splitlines() if "/agentEvents READ" in line]
    assert len(events) == 2  # one READ per user message, however often Google redelivers
    assert all(line.endswith("-> 200") for line in events)
    # The Chat App part of the demo.
    assert "a push with a wrong callback token                   -> 401" in shown
    assert "1 set aside with the reason (element 1: From, To missing)" in shown
    assert "receipts: 6 unique (MessageId, Status) pairs" in shown
    assert "(en_US): pass   history: fail -> pass" in shown
    chatapp_rows = {
        line.split()[0]: line.split() for line in shown.splitlines() if line.startswith("  wa-")
    }
    assert chatapp_rows["wa-1"][2] == "Read"
    assert (chatapp_rows["wa-2"][2], chatapp_rows["wa-2"][-1]) == ("Failed", "131026")
    # The Chat App SMQ part: enqueued in the stand-in, pulled by the scheduled puller.
    assert "receipts: 3 unique (the repeated Delivered collapsed)" in shown
    assert re.search(r"queue ChatAppStatus +deleted \d+, left 0", shown)
    # The simulated week for `make report`.
    assert "A simulated week for `make report`: 7 days before" in shown
    assert re.search(r"recorded [1-9]\d+ agent messages", shown)
