"""Password hashes: scrypt from the standard library, never a password in the clear.

The stored form is ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64), so the cost can grow
later without breaking old hashes. Hashing takes tens of milliseconds on purpose: callers
run it in a thread (:func:`hash_password_async`) so the event loop, and with it the
presence hot path, never waits on it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

#: The cost Django's scrypt hasher uses: 2**14 iterations, block size 8, one lane (16 MiB).
N = 2**14
R = 8
P = 1
DKLEN = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=DKLEN)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(want, got)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password, password, stored)
