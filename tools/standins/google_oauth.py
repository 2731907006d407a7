"""Google's OAuth token endpoint for a generated service account, shared by the API stand-ins.

google-auth's real JWT-bearer flow runs against it: the key file it writes points
`token_uri` at a stand-in, google-auth signs an assertion with the key, and the stand-in
verifies it with the key's public half (audience, issuer, scope) before issuing a token.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A service-account assertion is addressed to Google's token endpoint, wherever it is sent.
ASSERTION_AUDIENCE = "https://oauth2.googleapis.com/token"


class ServiceAccountTokens:
    """Google's OAuth token endpoint for one generated service account.

    The API stand-ins share one, as Google's APIs share one token endpoint: a key file whose
    token_uri is any of them works for all of them, each token with the scopes it was granted.
    """

    def __init__(
        self, client_email: str = "receipts@standin-project.iam.gserviceaccount.com"
    ) -> None:
        self.client_email = client_email
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._lock = threading.Lock()
        self._scopes_by_token: dict[str, frozenset[str]] = {}
        self.grants = 0

    def key_info(self, token_uri: str) -> dict[str, str]:
        """A service-account key, as the Google Cloud console would download it."""
        private_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "standin-project",
            "private_key_id": secrets.token_hex(20),
            "private_key": private_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        }

    def grant(
        self, form: dict[str, list[str]], required_scope: str | None
    ) -> tuple[int, dict[str, Any]]:
        """The JWT-bearer grant; `required_scope` refuses assertions without it (400)."""
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form["assertion"][0], certs=self._public_pem, audience=ASSERTION_AUDIENCE
            )
        except ValueError as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        if claims.get("iss") != self.client_email:
            return 400, {"error": "invalid_grant", "error_description": "unknown issuer"}
        scopes = frozenset(str(claims.get("scope", "")).split())
        if required_scope is not None and required_scope not in scopes:
            return 400, {"error": "invalid_scope"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._scopes_by_token[token] = scopes
            self.grants += 1
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def scopes_of(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of a live bearer token, or None for no or an unknown token."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            return self._scopes_by_token.get(token.strip())

    def revoke_all(self) -> None:
        """Every token issued so far stops working, as after it expired."""
        with self._lock:
            self._scopes_by_token.clear()
