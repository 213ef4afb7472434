"""Secret generation (stdlib `secrets`) and HS256 JWTs signed and verified with stdlib hmac.

Generated passwords use letters and digits only: no `@ # % $` or quotes, so they never need
quoting in a .env nor percent-encoding inside a database URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import string
import time

ALNUM = string.ascii_letters + string.digits
FIVE_YEARS = 5 * 365 * 24 * 3600
SUPABASE_ROLES = {"ANON_KEY": "anon", "SERVICE_ROLE_KEY": "service_role"}


def password(length: int = 32, alphabet: str = ALNUM) -> str:
    """A random password of exactly `length` characters from `alphabet`."""
    return "".join(_secrets.choice(alphabet) for _ in range(length))


def hex_key(nbytes: int = 32) -> str:
    """`openssl rand -hex N`: 2N hex characters."""
    return _secrets.token_hex(nbytes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_sign(payload: dict, secret: str) -> str:
    """An HS256 JWT (compact form)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing = f"{header}.{body}".encode("ascii")
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


def jwt_decode(token: str) -> tuple[dict, dict] | None:
    """(header, payload) without checking the signature; None when it is not a JWT at all."""
    try:
        head, body, _sig = token.split(".")
        return json.loads(_unb64(head)), json.loads(_unb64(body))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def jwt_verify(token: str, secret: str) -> dict | None:
    """The payload when token is an HS256 JWT signed with secret (constant-time compare), else None."""
    parts = token.split(".")
    if len(parts) != 3 or not secret:
        return None
    decoded = jwt_decode(token)
    if decoded is None or decoded[0].get("alg") != "HS256":
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
    except ValueError:
        return None
    if not hmac.compare_digest(expected, given):
        return None
    return decoded[1]


def supabase_key(role: str, jwt_secret: str, now: int | None = None) -> str:
    """Supabase's ANON_KEY / SERVICE_ROLE_KEY: role, iss supabase, iat now, exp in five years."""
    iat = int(time.time() if now is None else now)
    return jwt_sign({"role": role, "iss": "supabase", "iat": iat, "exp": iat + FIVE_YEARS}, jwt_secret)
