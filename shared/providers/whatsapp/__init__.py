"""WhatsApp Business Platform, Cloud API (Meta, direct): statuses of the business's messages,
users' messages and template reviews, by signed webhook; the agent READ by the Graph API.

`webhook.py` answers Meta's verification handshake and checks each POST's signature,
`envelope.py` reads the batch (entries x changes) the webhook and the normaliser share,
`normalise.py` turns a batch into the product's events, `read_receipts.py` marks users'
messages read. This module holds the provider's vocabulary and its registry entry, whose
loaders import them when first used.
"""

from __future__ import annotations

from shared.core import routing
from shared.core.events import StatusScale
from shared.core.provider import Normaliser, Provider, ReadReceiptPart, WebhookPart

NAME = "whatsapp"
OBJECT = "whatsapp_business_account"  # the `object` of every WhatsApp webhook body
# A body's kind, told by the webhook before publishing: one holding a user message goes to
# the READ sender too; any other (statuses, template reviews, account updates) is persisted.
USER_MESSAGES = "messages"
UPDATES = "updates"

# The provider's own order. Meta skips `delivered` when a message is delivered and read at
# once, so `sent -> read` is normal, and a late `delivered` never lowers `read`. `failed`
# outranks `sent` (a failure after the send is news that an out-of-order `sent` must not
# hide) but not `delivered`: with several devices Meta may report a failure for one device
# and a delivery to another, in either order, and the user got the message. Its time and
# errors are kept whatever the status. `played` (a voice message listened to) implies read.
SCALE = StatusScale({"sent": 1, "failed": 2, "delivered": 3, "read": 4, "played": 5})

# The route answers Meta's GET handshake and its POSTs; Meta batches up to ~1,000 updates
# and ~3 MB in one POST: 4 MiB leaves room (WHATSAPP_MAX_BODY_BYTES overrides it).
METHODS = frozenset({"GET", "POST"})
MAX_BODY_BYTES = 4 * 1024 * 1024

# Configuration, by environment variable.
APP_SECRET = "WHATSAPP_APP_SECRET"  # noqa: S105 -- a variable's name, not a secret
VERIFY_TOKEN = "WHATSAPP_VERIFY_TOKEN"  # noqa: S105 -- a variable's name, not a secret
ACCESS_TOKEN = "WHATSAPP_ACCESS_TOKEN"  # noqa: S105 -- a variable's name, not a secret
API_ENDPOINT = "WHATSAPP_API_ENDPOINT"
API_VERSION = "WHATSAPP_API_VERSION"
API_RETRY_DEADLINE = "WHATSAPP_API_RETRY_DEADLINE_SECONDS"


def topic_key(kind: str) -> str:
    return routing.READABLE if kind == USER_MESSAGES else routing.EVENTS


def _webhook() -> WebhookPart:
    from shared.providers.whatsapp import webhook

    return webhook


def _normaliser() -> Normaliser:
    from shared.providers.whatsapp import normalise

    return normalise


def _read_receipts() -> ReadReceiptPart:
    from shared.providers.whatsapp import read_receipts

    return read_receipts


PROVIDER = Provider(
    name=NAME,
    title="WhatsApp",
    route="whatsapp",
    switch=(APP_SECRET,),
    topic_key=topic_key,
    scale=SCALE,
    sent_status="sent",
    # Meta retries for up to 7 days, so a 503 while Pub/Sub is down loses nothing; and a
    # body of up to 3 MB would not fit in a spool document (1 MiB) anyway.
    spools_by_default=False,
    load_webhook=_webhook,
    load_normaliser=_normaliser,
    load_read_receipts=_read_receipts,
    methods=METHODS,
    max_body_bytes=MAX_BODY_BYTES,
    read_switch=(ACCESS_TOKEN,),  # the Graph API's bearer token: without it, no READ
)
