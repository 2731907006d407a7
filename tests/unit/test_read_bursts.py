"""Which READs one call covers (pure)."""

from datetime import UTC, datetime, timedelta

from shared.core.read_receipts import ReadTarget, bursts, too_old


def test_bursts_group_a_conversations_targets_in_order_and_keep_the_rest_alone() -> None:
    a1, a2 = ReadTarget("a", "1", burst="x"), ReadTarget("a", "2", burst="x")
    b1 = ReadTarget("b", "1", burst="x")  # the same key in another conversation: its own
    alone1, alone2 = ReadTarget("a", "3"), ReadTarget("a", "4")
    assert bursts([a1, alone1, b1, a2, alone2]) == [[a1, a2], [alone1], [b1], [alone2]]


def test_the_same_message_twice_in_one_delivery_is_one_target() -> None:
    first = ReadTarget("a", "1", burst="x")
    assert bursts([first, ReadTarget("a", "1", burst="x"), ReadTarget("a", "1")]) == [[first]]


def test_too_old_only_past_the_platforms_limit() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert not too_old(ReadTarget("a", "1"), now)
    assert not too_old(ReadTarget("a", "1", not_after=now), now)
    assert too_old(ReadTarget("a", "1", not_after=now - timedelta(microseconds=1)), now)
