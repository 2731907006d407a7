"""The Alibaba stand-in against Alibaba's official clients: alibabacloud-dybaseapi20170525 for
QueryTokenForMnsQueue and aliyun-mns-sdk for the Chat App receipt queues.

What passes here is what a queue puller may rely on from the stand-in; the tests that pin down
the clients' own behaviour (timeouts, retries, base64, threads) are the evidence for choosing
between them and a small client of the documented contracts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import pytest
import requests
from alibabacloud_dybaseapi20170525 import models as dybaseapi  # type: ignore[import-untyped]
from alibabacloud_dybaseapi20170525.client import (  # type: ignore[import-untyped]
    Client as DybaseapiClient,
)
from alibabacloud_tea_openapi import models as open_api  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.exceptions import (  # type: ignore[import-untyped]
    ClientException,
    ServerException,
)
from darabonba.exceptions import UnretryableException  # type: ignore[import-untyped]
from darabonba.policy.retry import RetryOptions  # type: ignore[import-untyped]
from mns.account import Account  # type: ignore[import-untyped]
from mns.auth import Credentials  # type: ignore[import-untyped]
from mns.mns_exception import (  # type: ignore[import-untyped]
    MNSClientNetworkException,
    MNSServerException,
)

from tools.standins.alibaba import AlibabaStandIn
from tools.standins.alibaba.queues import (
    BATCH_RECEIVE_MESSAGE,
    MNS_VERSION,
    QueueCounts,
    mns_signature,
)
from tools.standins.alibaba.token_service import (
    ACS3_HMAC_SHA256,
    CHINA_STANDARD_TIME,
    DYBASEAPI_ACTION,
    RPC_HMAC_SHA1,
    StsCredentials,
    acs3_signature,
)

STATUS = "ChatAppStatus"
INBOUND = "ChatAppInbound"
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Polls condition until it is truthy, or fails the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def decode_body(body: str) -> Any:
    """What a puller does with set_encoding(False): base64 then JSON, one message at a time."""
    return json.loads(base64.b64decode(body, validate=True))


@pytest.fixture
def alibaba() -> Iterator[AlibabaStandIn]:
    server = AlibabaStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def start_alibaba() -> Iterator[Callable[..., AlibabaStandIn]]:
    """For tests that need other settings (short visibility, short tokens)."""
    started: list[AlibabaStandIn] = []

    def start(**settings: Any) -> AlibabaStandIn:
        server = AlibabaStandIn(**settings).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def token_client(alibaba: AlibabaStandIn, **config: Any) -> Any:
    settings: dict[str, Any] = {
        "access_key_id": alibaba.access_key_id,
        "access_key_secret": alibaba.access_key_secret,
        "endpoint": alibaba.dybaseapi_endpoint,
        "protocol": "http",
    }
    return DybaseapiClient(open_api.Config(**(settings | config)))


def query_token(client: Any, message_type: str, queue_name: str | None = None) -> Any:
    request = dybaseapi.QueryTokenForMnsQueueRequest(
        message_type=message_type, queue_name=queue_name
    )
    return client.query_token_for_mns_queue(request)


class RenewingCredentials:
    """A credentials provider for aliyun-mns-sdk: the SDK asks it on every request, so a
    renewed token reaches an existing Account without a new client."""

    def __init__(self, alibaba: AlibabaStandIn, message_type: str) -> None:
        self._client = token_client(alibaba)
        self._message_type = message_type
        self._queue_name = alibaba.queue_name(message_type)
        self.renewals = 0
        self.renew()

    def renew(self) -> None:
        body = query_token(self._client, self._message_type, self._queue_name).body
        assert body.code == "OK"
        token = body.message_token_dto
        self._current = Credentials(
            token.access_key_id, token.access_key_secret, token.security_token
        )
        self.renewals += 1

    def get_credentials(self) -> Any:
        return self._current


def queue_for(
    alibaba: AlibabaStandIn, credentials: StsCredentials | RenewingCredentials, name: str = ""
) -> Any:
    """The official Queue object, base64 decoding off as a puller must use it."""
    if isinstance(credentials, StsCredentials):
        account = Account(
            alibaba.endpoint,
            credentials.access_key_id,
            credentials.access_key_secret,
            credentials.security_token,
        )
        name = name or credentials.queue_name
    else:
        account = Account(alibaba.endpoint, credentials_provider=credentials)
    queue = account.get_queue(name)
    queue.set_encoding(False)
    return queue


# --- QueryTokenForMnsQueue through alibabacloud-dybaseapi20170525 --------------------------------


def test_official_token_client_gets_expiring_sts_credentials(alibaba: AlibabaStandIn) -> None:
    before = time.time()
    answer = query_token(token_client(alibaba), STATUS, alibaba.queue_name(STATUS))

    assert (answer.status_code, answer.body.code) == (200, "OK")
    token = answer.body.message_token_dto
    issued = alibaba.tokens_issued
    assert [credentials.access_key_id for credentials in issued] == [token.access_key_id]
    assert token.access_key_id.startswith("STS.")
    assert (token.access_key_secret, token.security_token) == (
        issued[0].access_key_secret,
        issued[0].security_token,
    )
    # yyyy-MM-dd HH:mm:ss with no zone, meaning UTC+8: the instant the token stops working.
    expires = datetime.strptime(token.expire_time, "%Y-%m-%d %H:%M:%S")
    expires_at = expires.replace(tzinfo=CHINA_STANDARD_TIME).timestamp()
    assert expires_at == issued[0].expires_at
    assert before + 3600 - 1 <= expires_at <= time.time() + 3600
    assert [call.signature_method for call in alibaba.calls_for(DYBASEAPI_ACTION)] == [
        ACS3_HMAC_SHA256  # the client's default: V3 headers, not the RPC query signature
    ]


def test_official_token_client_with_the_older_rpc_signature(alibaba: AlibabaStandIn) -> None:
    answer = query_token(token_client(alibaba, signature_algorithm="v2"), INBOUND)

    assert answer.body.code == "OK"
    assert alibaba.tokens_issued[0].queue_name == alibaba.queue_name(INBOUND)
    assert [call.signature_method for call in alibaba.calls_for(DYBASEAPI_ACTION)] == [
        RPC_HMAC_SHA1
    ]


@pytest.mark.parametrize("signature_algorithm", [None, "v2"])
@pytest.mark.parametrize(
    ("wrong", "status", "code"),
    [
        ({"access_key_id": "LTAI5tSomeoneElse"}, 404, "InvalidAccessKeyId.NotFound"),
        ({"access_key_secret": "not-the-secret"}, 400, "SignatureDoesNotMatch"),
    ],
)
def test_a_wrong_access_key_gets_no_token(
    alibaba: AlibabaStandIn,
    signature_algorithm: str | None,
    wrong: dict[str, str],
    status: int,
    code: str,
) -> None:
    client = token_client(alibaba, signature_algorithm=signature_algorithm, **wrong)

    with pytest.raises(ClientException) as refused:
        query_token(client, STATUS)

    assert (refused.value.status_code, refused.value.code) == (status, code)
    assert alibaba.tokens_issued == []


@pytest.mark.parametrize(
    ("message_type", "queue_name"),
    [("ChatAppBilling", None), (STATUS, "Alicom-Queue-1234567890123456-ChatAppInbound")],
)
def test_a_token_only_for_a_known_message_type_and_its_queue(
    alibaba: AlibabaStandIn, message_type: str, queue_name: str | None
) -> None:
    answer = query_token(token_client(alibaba), message_type, queue_name)

    # A business refusal is a 200 whose Code is not OK: the official client does not raise.
    assert (answer.status_code, answer.body.code) == (200, "InvalidParameter")
    assert answer.body.message_token_dto is None
    assert alibaba.tokens_issued == []


def test_the_official_token_client_does_not_retry_by_default(alibaba: AlibabaStandIn) -> None:
    client = token_client(alibaba)
    alibaba.fail_next_token_calls(1, status=503, code="ServiceUnavailable")

    with pytest.raises(ServerException) as failed:
        query_token(client, STATUS)

    assert (failed.value.status_code, failed.value.code) == (503, "ServiceUnavailable")
    assert [call.status for call in alibaba.calls_for(DYBASEAPI_ACTION)] == [503]
    assert query_token(client, STATUS).body.code == "OK"


def test_the_official_token_client_retries_only_what_retry_options_name(
    alibaba: AlibabaStandIn,
) -> None:
    retry = RetryOptions(
        {
            "retryable": True,
            "retryCondition": [
                {
                    "maxAttempts": 3,
                    "errorCode": ["ServiceUnavailable"],
                    "backoff": {"policy": "Fixed", "period": 10},  # milliseconds
                }
            ],
        }
    )
    client = token_client(alibaba, retry_options=retry)
    alibaba.fail_next_token_calls(2, status=503, code="ServiceUnavailable")

    assert query_token(client, STATUS).body.code == "OK"
    assert [call.status for call in alibaba.calls_for(DYBASEAPI_ACTION)] == [503, 503, 200]


def test_one_official_token_client_may_be_shared_by_threads(alibaba: AlibabaStandIn) -> None:
    client = token_client(alibaba)
    codes: list[str] = []

    def fetch_tokens() -> None:
        codes.extend(query_token(client, STATUS).body.code for _ in range(5))

    threads = [threading.Thread(target=fetch_tokens, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert codes == ["OK"] * 40
    assert len({token.access_key_id for token in alibaba.tokens_issued}) == 40


def test_the_official_token_client_gives_up_at_its_read_timeout(alibaba: AlibabaStandIn) -> None:
    client = token_client(alibaba, read_timeout=500)  # milliseconds; the default is 10,000
    alibaba.delay_next(3, operation=DYBASEAPI_ACTION)

    started = time.monotonic()
    with pytest.raises(UnretryableException):
        query_token(client, STATUS)

    assert time.monotonic() - started < 2.5


# --- the queue through aliyun-mns-sdk -------------------------------------------------------------


def test_batch_receive_then_batch_delete_with_bodies_decoded_one_by_one(
    alibaba: AlibabaStandIn,
) -> None:
    receipts: list[Any] = [
        {"MessageId": "m1", "Status": "Delivered", "Timestamp": 1767225600000},
        [{"MessageId": "m2", "Status": "Read"}],  # an array is accepted too
        {"MessageId": "m3", "Status": "Failed", "ErrorCode": "131026"},
    ]
    ids = [alibaba.enqueue(STATUS, receipt) for receipt in receipts]
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))

    before_ms = int(time.time() * 1000)
    messages = queue.batch_receive_message(16, 1)

    assert [message.message_id for message in messages] == ids
    assert [decode_body(message.message_body) for message in messages] == receipts
    for message in messages:
        expected_md5 = hashlib.md5(message.message_body.encode()).hexdigest().upper()  # noqa: S324
        assert message.message_body_md5 == expected_md5
        assert message.dequeue_count == 1
        assert message.enqueue_time <= message.first_dequeue_time
        assert message.next_visible_time >= before_ms + 30_000 - 1000
        assert message.priority == 8
    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=3, deleted=0)

    queue.batch_delete_message([message.receipt_handle for message in messages])

    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=0, deleted=3)


def test_an_empty_queue_answers_message_not_exist_after_the_wait(alibaba: AlibabaStandIn) -> None:
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))

    started = time.monotonic()
    with pytest.raises(MNSServerException) as empty:
        queue.batch_receive_message(16, 1)

    assert empty.value.type == "MessageNotExist"
    assert time.monotonic() - started >= 0.9
    assert [call.status for call in alibaba.calls_for(BATCH_RECEIVE_MESSAGE)] == [404]


def test_a_long_poll_answers_as_soon_as_a_receipt_arrives(alibaba: AlibabaStandIn) -> None:
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    received: list[Any] = []
    poller = threading.Thread(
        target=lambda: received.extend(queue.batch_receive_message(16, 20)), daemon=True
    )
    started = time.monotonic()
    poller.start()
    wait_for(lambda: alibaba.pollers(STATUS) == 1, 5, "the receive to start waiting")

    message_id = alibaba.enqueue(STATUS, {"MessageId": "late"})
    poller.join(timeout=10)

    assert [message.message_id for message in received] == [message_id]
    assert time.monotonic() - started < 10  # well before the 20 s wait ran out


@pytest.mark.parametrize("how", ["its visibility timeout ran out", "expire_visibility()"])
def test_a_message_not_deleted_reappears_with_a_new_handle(
    start_alibaba: Callable[..., AlibabaStandIn], how: str
) -> None:
    scripted = how == "expire_visibility()"
    alibaba = start_alibaba(visibility_timeout_seconds=30 if scripted else 1)
    message_id = alibaba.enqueue(STATUS, {"MessageId": "m1"})
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    [first] = queue.batch_receive_message(16, 0)
    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=1, deleted=0)
    if scripted:
        alibaba.expire_visibility(STATUS)

    # Hidden while in flight: the long poll ends when it is visible again.
    [again] = queue.batch_receive_message(16, 10)

    assert again.message_id == message_id
    assert again.dequeue_count == alibaba.dequeue_count(message_id) == 2
    assert again.first_dequeue_time == first.first_dequeue_time
    assert again.receipt_handle != first.receipt_handle
    with pytest.raises(MNSServerException) as stale:
        queue.delete_message(first.receipt_handle)
    assert stale.value.type == "ReceiptHandleError"
    queue.delete_message(again.receipt_handle)
    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=0, deleted=1)
    with pytest.raises(MNSServerException) as gone:
        queue.delete_message(again.receipt_handle)
    assert gone.value.type == "MessageNotExist"


def test_the_single_message_receive_and_delete(alibaba: AlibabaStandIn) -> None:
    alibaba.enqueue(INBOUND, {"MessageId": "in1", "Type": "TEXT", "Message": "hi"})
    queue = queue_for(alibaba, alibaba.issue_credentials(INBOUND))

    message = queue.receive_message(0)
    queue.delete_message(message.receipt_handle)

    assert decode_body(message.message_body) == {
        "MessageId": "in1",
        "Type": "TEXT",
        "Message": "hi",
    }
    assert [call.operation for call in alibaba.calls_for(queue=INBOUND)] == [
        "ReceiveMessage",
        "DeleteMessage",
    ]
    assert alibaba.counts(INBOUND).deleted == 1


def test_change_message_visibility_hands_out_a_new_handle(alibaba: AlibabaStandIn) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "m1"})
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    [message] = queue.batch_receive_message(16, 0)

    changed = queue.change_message_visibility(message.receipt_handle, 120)

    assert changed.receipt_handle != message.receipt_handle
    assert int(changed.next_visible_time) >= int(time.time() * 1000) + 119_000
    with pytest.raises(MNSServerException) as stale:
        queue.delete_message(message.receipt_handle)
    assert stale.value.type == "ReceiptHandleError"
    queue.delete_message(changed.receipt_handle)


@pytest.mark.parametrize("expiry", ["revoked", "lifetime ran out"])
def test_an_expired_token_is_refused_and_a_renewed_one_works_on_the_same_client(
    start_alibaba: Callable[..., AlibabaStandIn], expiry: str
) -> None:
    alibaba = start_alibaba(token_lifetime_seconds=2 if expiry == "lifetime ran out" else 3600)
    credentials = RenewingCredentials(alibaba, STATUS)
    queue = queue_for(alibaba, credentials, alibaba.queue_name(STATUS))
    alibaba.enqueue(STATUS, {"MessageId": "m1"})
    alibaba.enqueue(STATUS, {"MessageId": "m2"})
    [first] = queue.batch_receive_message(1, 0)
    assert decode_body(first.message_body) == {"MessageId": "m1"}

    if expiry == "revoked":
        alibaba.expire_tokens()
    else:
        expires_at = alibaba.tokens_issued[-1].expires_at
        wait_for(lambda: time.time() >= expires_at, 5, "the token's ExpireTime")

    with pytest.raises(MNSServerException) as refused:
        queue.batch_receive_message(16, 0)
    assert refused.value.type == "AccessDenied"
    assert alibaba.calls_for(BATCH_RECEIVE_MESSAGE)[-1].status == 403

    credentials.renew()  # what a puller does on any 403 from the queue

    [second] = queue.batch_receive_message(16, 0)
    assert decode_body(second.message_body) == {"MessageId": "m2"}
    assert credentials.renewals == 2
    assert len(alibaba.tokens_issued) == 2


def test_scripted_expiry_and_internal_error_fail_only_the_next_receives(
    alibaba: AlibabaStandIn,
) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "m1"})
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    alibaba.expire_next_receives(1)
    alibaba.fail_next_receives(1)

    with pytest.raises(MNSServerException) as expired:
        queue.batch_receive_message(16, 0)
    with pytest.raises(MNSServerException) as broken:
        queue.batch_receive_message(16, 0)
    [message] = queue.batch_receive_message(16, 0)

    assert (expired.value.type, broken.value.type) == ("AccessDenied", "InternalError")
    assert [call.status for call in alibaba.calls_for(BATCH_RECEIVE_MESSAGE)] == [403, 500, 200]
    assert message.dequeue_count == 1  # the failed receives handed nothing out


def test_a_long_poll_may_be_answered_message_not_exist_at_once(alibaba: AlibabaStandIn) -> None:
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    alibaba.fail_next_receives(1, status=404, code="MessageNotExist", message="Message not exist.")

    started = time.monotonic()
    with pytest.raises(MNSServerException) as empty:
        queue.batch_receive_message(16, 30)

    assert empty.value.type == "MessageNotExist"
    assert time.monotonic() - started < 5


def test_a_partial_batch_delete_names_the_handle_that_failed(alibaba: AlibabaStandIn) -> None:
    ids = [alibaba.enqueue(STATUS, {"MessageId": f"m{n}"}) for n in range(3)]
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    messages = queue.batch_receive_message(16, 0)
    alibaba.reject_deletes(message_ids=[ids[1]])

    with pytest.raises(MNSServerException) as partial:
        queue.batch_delete_message([message.receipt_handle for message in messages])

    assert partial.value.type == "ReceiptHandleError"
    assert partial.value.sub_errors == [
        {
            "ErrorCode": "ReceiptHandleError",
            "ErrorMessage": "The receipt handle you provide is not valid.",
            "ReceiptHandle": messages[1].receipt_handle,
        }
    ]
    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=1, deleted=2)


@pytest.mark.parametrize(
    ("batch_size", "wait_seconds"), [(16, 31), (17, 0), (0, 0)], ids=["wait 31", "17", "0"]
)
def test_out_of_range_receive_parameters_are_refused(
    alibaba: AlibabaStandIn, batch_size: int, wait_seconds: int
) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "m1"})
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))

    with pytest.raises(MNSServerException) as refused:
        queue.batch_receive_message(batch_size, wait_seconds)

    assert refused.value.type == "InvalidArgument"
    assert alibaba.calls_for(BATCH_RECEIVE_MESSAGE)[-1].status == 400
    assert alibaba.counts(STATUS).visible == 1


def _unknown_queue(alibaba: AlibabaStandIn) -> tuple[StsCredentials, str]:
    return alibaba.issue_credentials(STATUS), "Alicom-Queue-1234567890123456-Nope"


def _another_types_queue(alibaba: AlibabaStandIn) -> tuple[StsCredentials, str]:
    return alibaba.issue_credentials(INBOUND), alibaba.queue_name(STATUS)


def _wrong_secret(alibaba: AlibabaStandIn) -> tuple[StsCredentials, str]:
    issued = alibaba.issue_credentials(STATUS)
    return replace(issued, access_key_secret="guessed"), issued.queue_name


def _no_security_token(alibaba: AlibabaStandIn) -> tuple[StsCredentials, str]:
    issued = alibaba.issue_credentials(STATUS)
    return replace(issued, security_token=""), issued.queue_name


def _never_issued(alibaba: AlibabaStandIn) -> tuple[StsCredentials, str]:
    issued = alibaba.issue_credentials(STATUS)
    return replace(issued, access_key_id="STS.made-up"), issued.queue_name


@pytest.mark.parametrize(
    ("make_request", "status", "code"),
    [
        (_unknown_queue, 404, "QueueNotExist"),
        (_another_types_queue, 403, "AccessDenied"),
        (_wrong_secret, 403, "SignatureDoesNotMatch"),
        (_no_security_token, 403, "AccessDenied"),
        (_never_issued, 403, "InvalidAccessKeyId"),
    ],
)
def test_the_queue_refuses_what_its_token_does_not_allow(
    alibaba: AlibabaStandIn,
    make_request: Callable[[AlibabaStandIn], tuple[StsCredentials, str]],
    status: int,
    code: str,
) -> None:
    credentials, queue_name = make_request(alibaba)
    alibaba.enqueue(STATUS, {"MessageId": "m1"})

    with pytest.raises(MNSServerException) as refused:
        queue_for(alibaba, credentials, queue_name).batch_receive_message(16, 0)

    assert refused.value.type == code
    [call] = alibaba.calls_for(BATCH_RECEIVE_MESSAGE)
    assert (call.status, call.error_code) == (status, code)
    assert alibaba.counts(STATUS).visible == 1


# --- evidence on aliyun-mns-sdk itself --------------------------------------------------------


def test_the_sdks_own_base64_decoding_loses_the_whole_batch_to_one_bad_body(
    alibaba: AlibabaStandIn,
) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "good"})
    alibaba.enqueue_raw(STATUS, '{"MessageId": "raw JSON, not base64"}')
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    queue.set_encoding(True)  # the SDK's default

    with pytest.raises(MNSClientNetworkException) as damaged:
        queue.batch_receive_message(16, 0)

    assert damaged.value.type == "RespDataDamaged"
    # Both were handed out, so the good receipt now waits out the visibility timeout too.
    assert alibaba.counts(STATUS) == QueueCounts(visible=0, in_flight=2, deleted=0)


def test_with_decoding_off_only_the_bad_body_fails_to_decode(alibaba: AlibabaStandIn) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "good"})
    alibaba.enqueue_raw(STATUS, '{"MessageId": "raw JSON, not base64"}')
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))

    good, poison = queue.batch_receive_message(16, 0)

    assert decode_body(good.message_body) == {"MessageId": "good"}
    with pytest.raises(binascii.Error):
        decode_body(poison.message_body)
    assert json.loads(poison.message_body) == {"MessageId": "raw JSON, not base64"}


def test_the_sdks_base64_decoding_turns_some_raw_bodies_into_garbage_silently(
    alibaba: AlibabaStandIn,
) -> None:
    alibaba.enqueue_raw(STATUS, "true")  # valid JSON that also happens to be valid base64
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    queue.set_encoding(True)

    [message] = queue.batch_receive_message(16, 0)

    assert message.message_body == base64.b64decode("true")  # three bytes of noise, no error
    assert message.message_body != b"true"


def test_the_sdks_http_timeout_ends_a_slow_answer_but_the_message_stays_handed_out(
    alibaba: AlibabaStandIn,
) -> None:
    alibaba.enqueue(STATUS, {"MessageId": "m1"})
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    # Seconds; the SDK applies it to http connections only: over https it never times out.
    queue.mns_client.set_connection_timeout(0.5)
    alibaba.delay_next(2, operation=BATCH_RECEIVE_MESSAGE)

    started = time.monotonic()
    with pytest.raises(MNSClientNetworkException) as timed_out:
        queue.batch_receive_message(16, 0)

    assert time.monotonic() - started < 1.5
    assert "timed out" in timed_out.value.message
    wait_for(lambda: alibaba.calls_for(BATCH_RECEIVE_MESSAGE), 5, "the slow receive to finish")
    assert alibaba.counts(STATUS).in_flight == 1  # the server did hand it out: it comes back later


def test_one_sdk_client_cannot_serve_two_threads_at_once(alibaba: AlibabaStandIn) -> None:
    queue = queue_for(alibaba, alibaba.issue_credentials(STATUS))
    errors: list[BaseException] = []

    def long_poll() -> None:
        try:
            queue.batch_receive_message(16, 1)
        except MNSServerException as error:  # the empty queue's answer, or worse
            errors.append(error)

    first = threading.Thread(target=long_poll, daemon=True)
    first.start()
    wait_for(lambda: alibaba.pollers(STATUS) == 1, 5, "the first long poll to be waiting")

    with pytest.raises(MNSClientNetworkException) as second:
        queue.batch_receive_message(16, 0)  # same HTTPConnection, a request already in flight
    first.join(timeout=10)

    # One http.client connection per client: the second call fails before it is even sent.
    assert "Request-sent" in second.value.message  # http.client's CannotSendRequest
    [first_outcome] = errors
    assert isinstance(first_outcome, MNSServerException)
    assert first_outcome.type == "MessageNotExist"  # the first call still got its own answer
    assert [call.operation for call in alibaba.calls_for()] == [BATCH_RECEIVE_MESSAGE]


# --- the contract's edges, with hand-made requests --------------------------------------------


def signed_receive(
    alibaba: AlibabaStandIn, credentials: StsCredentials, date: str, version: str = MNS_VERSION
) -> requests.Response:
    resource = f"/queues/{credentials.queue_name}/messages?numOfMessages=16&waitseconds=0"
    headers = {"Date": date, "x-mns-version": version, "security-token": credentials.security_token}
    signature = mns_signature(credentials.access_key_secret, "GET", "", "", date, headers, resource)
    headers["Authorization"] = f"MNS {credentials.access_key_id}:{signature}"
    return requests.get(alibaba.endpoint + resource, headers=headers, timeout=5)


def http_date(epoch_seconds: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch_seconds))


def test_a_request_dated_more_than_15_minutes_off_is_refused(alibaba: AlibabaStandIn) -> None:
    credentials = alibaba.issue_credentials(STATUS)

    late = signed_receive(alibaba, credentials, http_date(time.time() - 16 * 60))
    on_time = signed_receive(alibaba, credentials, http_date(time.time() - 14 * 60))

    assert (late.status_code, "<Code>TimeExpired</Code>" in late.text) == (408, True)
    assert (on_time.status_code, "<Code>MessageNotExist</Code>" in on_time.text) == (404, True)


def test_a_request_without_the_api_version_is_refused(alibaba: AlibabaStandIn) -> None:
    answer = signed_receive(
        alibaba, alibaba.issue_credentials(STATUS), http_date(time.time()), version="2014-01-01"
    )

    assert answer.status_code == 400
    assert "<Code>InvalidArgument</Code>" in answer.text
    assert answer.headers["x-mns-request-id"]


def acs3_token_request(
    alibaba: AlibabaStandIn, query: str, signed_query: str, nonce: str
) -> requests.Response:
    """A V3-signed QueryTokenForMnsQueue, signed over signed_query but sent with query."""
    headers = {
        "host": alibaba.dybaseapi_endpoint,
        "x-acs-action": DYBASEAPI_ACTION,
        "x-acs-version": "2017-05-25",
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    signature = acs3_signature(
        alibaba.access_key_secret,
        "POST",
        "/",
        parse_qsl(signed_query),
        headers,
        headers["x-acs-content-sha256"],
    )
    headers["Authorization"] = (
        f"{ACS3_HMAC_SHA256} Credential={alibaba.access_key_id},"
        f"SignedHeaders={';'.join(sorted(headers))},Signature={signature}"
    )
    return requests.post(f"{alibaba.endpoint}/?{query}", headers=headers, timeout=5)


def test_the_token_signature_covers_the_query_and_a_nonce_works_once(
    alibaba: AlibabaStandIn,
) -> None:
    status_query = "MessageType=ChatAppStatus"

    tampered = acs3_token_request(alibaba, "MessageType=ChatAppInbound", status_query, "n1")
    first = acs3_token_request(alibaba, status_query, status_query, "n2")
    replayed = acs3_token_request(alibaba, status_query, status_query, "n2")

    assert (tampered.status_code, tampered.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert (first.status_code, first.json()["Code"]) == (200, "OK")
    assert (replayed.status_code, replayed.json()["Code"]) == (400, "SignatureNonceUsed")
    assert len(alibaba.tokens_issued) == 1
