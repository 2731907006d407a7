"""Chat App's webhook part: the callback URL's token, the source address, the batch's shape.

Alibaba documents no signature for these callbacks, so each callback URL carries a secret
token (several may be configured so one can rotate), optionally with a source-IP
allow-list. Every body is a JSON array of events of one type, told by the URL's path.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.core import routing
from shared.core.config import Env
from shared.core.credentials import matches_any
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.provider import Receiver
from shared.providers.chatapp import KIND_BY_PATH, NAME
from shared.providers.chatapp.element_screen import set_aside


@dataclass(frozen=True)
class ChatAppWebhookSettings:
    tokens: tuple[str, ...]
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def receiver(env: Env) -> Receiver:
    """Chat App is on when callback tokens are configured."""
    networks = []
    for entry in env.names("CHATAPP_ALLOWED_IPS", ()):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            env.problem(f"CHATAPP_ALLOWED_IPS holds {entry!r}, not an address or network")
    settings = ChatAppWebhookSettings(env.secrets("CHATAPP_CALLBACK_TOKENS"), tuple(networks))
    return functools.partial(receive, settings=settings)


def receive(request: Incoming, settings: ChatAppWebhookSettings) -> Reply | Publish:
    """`/chatapp/{status|inbound|audit}/{token}`: a batch is handed off whole, unchanged."""
    kind = KIND_BY_PATH.get(request.path[0]) if 1 <= len(request.path) <= 2 else None
    if kind is None:
        return Reply(404, {"code": 404, "msg": "no such callback"})
    token = request.path[1] if len(request.path) == 2 else ""  # a missing token is a wrong one
    # The address first, and one answer for both: an outsider cannot tell a leaked token.
    if settings.allowed_networks and not ip_allowed(request.client_ip, settings.allowed_networks):
        return Reply(401, _UNKNOWN_TOKEN, reason="source address outside the allow-list")
    if not matches_any(token, settings.tokens):
        return Reply(401, _UNKNOWN_TOKEN, reason="callback token")
    events = parse_json(request.body)
    if not isinstance(events, list):
        return Reply(400, {"code": 400, "msg": "body must be a JSON array of events"})
    if not events:
        return Reply(200, {"code": 0, "msg": "no events"})
    return Publish(
        topic_key=routing.EVENTS,
        attributes=routing.attributes(provider=NAME, kind=kind, events=str(len(events))),
        accepted=_answer(kind, events),
        refused=Reply(503, {"code": 503, "msg": "events could not be stored, push again"}),
    )


_UNKNOWN_TOKEN = {"code": 401, "msg": "unknown callback token"}


def _answer(kind: str, events: list[Any]) -> dict[str, Any]:
    """Alibaba's `code` and `msg`, and how many elements the recorder records and sets aside
    (it classifies them with the same `set_aside`)."""
    problems = [
        f"element {i}: {found[1]}" for i, e in enumerate(events) if (found := set_aside(kind, e))
    ]
    summary = f"accepted {len(events)} event{'' if len(events) == 1 else 's'}"
    if problems:
        listed = "; ".join(problems[:3])
        summary += f"; {len(problems)} set aside with the reason ({listed})"
    return {
        "code": 0,
        "msg": summary,
        "accepted": len(events) - len(problems),
        "setAside": len(problems),
    }


def ip_allowed(
    client_ip: str | None,
    networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    return any(address in network for network in networks)
