"""The OAuth code of a Business Messages sign-in is never stored or re-published (pure).

The signature covers the raw body, so the webhook checks it first and then publishes the
sign-in with its code redacted; the normaliser redacts a body published before that (dead
letters, spool) the same way before anything of it is stored.
"""

from __future__ import annotations

import json
from typing import Any

AUTHENTICATION = "authenticationResponse"
REDACTED = "REDACTED"


def redacted(document: Any) -> bytes | None:
    """A sign-in's body with its code redacted, or None for a document that is no sign-in.

    The body is written anew even when there is no code: a key the raw body repeats could
    hide one. A sign-in that is not an object is redacted whole: it is malformed, and may
    hold the code in some other shape.
    """
    if not isinstance(document, dict) or AUTHENTICATION not in document:
        return None
    response = document[AUTHENTICATION]
    if not isinstance(response, dict):
        clean: Any = REDACTED
    elif response.get("code"):
        clean = {**response, "code": REDACTED}
    else:
        clean = response
    return json.dumps({**document, AUTHENTICATION: clean}).encode()
