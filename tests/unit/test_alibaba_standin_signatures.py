"""The stand-in's signature checks against the worked examples in Alibaba's documentation."""

from datetime import UTC, datetime

from tools.standins.alibaba.queues import mns_signature
from tools.standins.alibaba.token_service import (
    china_standard_time,
    percent_encode,
    rpc_v2_signature,
)


def test_mns_signature_matches_the_documented_example() -> None:
    # MNS "request signature" example: GET /MyQueue, TestAccessID / TestAccessSecret.
    # Alibaba masks the last characters of the published value with ****.
    signature = mns_signature(
        "TestAccessSecret",
        "GET",
        "",
        "",
        "Thu, 09 Jul 2015 03:01:34 GMT",
        {"Host": "123.mns.cn-hangzhou.aliyuncs.com", "x-mns-version": "2015-06-06"},
        "/MyQueue",
    )

    assert signature.startswith("uwx3yeWoILzgmvesW0BQSgfM")


def test_mns_signature_sorts_lower_cased_mns_headers_and_ignores_the_others() -> None:
    headers = {"X-MNS-Version": "2015-06-06", "x-mns-date": "d", "security-token": "t"}
    reordered = {"x-mns-date": "d", "x-mns-version": "2015-06-06", "Content-Length": "0"}

    assert mns_signature("s", "GET", "", "", "d", headers, "/q") == mns_signature(
        "s", "GET", "", "", "d", reordered, "/q"
    )


def test_rpc_signature_matches_the_documented_example() -> None:
    # The POP RPC signature example: DescribeRegions with testid / testsecret.
    params = {
        "TimeStamp": "2016-02-23T12:46:24Z",
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "Version": "2014-05-26",
        "SignatureVersion": "1.0",
    }

    assert rpc_v2_signature("testsecret", "GET", params) == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_percent_encoding_is_rfc_3986() -> None:
    assert percent_encode("a b*c~d/e+f:") == "a%20b%2Ac~d%2Fe%2Bf%3A"


def test_expire_time_is_written_in_utc_plus_8_without_a_zone() -> None:
    midnight_utc = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    assert china_standard_time(midnight_utc) == "2026-01-01 08:00:00"
