"""Basic auth against bcrypt hashes, with bcrypt off the event loop and its CPU bounded."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

# Verified (user, password) pairs remembered so each scrape does not pay bcrypt's cost.
DEFAULT_CACHE_SIZE = 1024
# Verifications waiting for the bcrypt thread beyond this are refused outright, so a flood of
# wrong passwords costs the attacker a connection each but cannot queue unbounded CPU work.
MAX_PENDING_VERIFICATIONS = 32


class Authenticator:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    bcrypt takes 50-250 ms by design, far too slow to pay on every scrape, so a
    successful verification is remembered. The cache key is an HMAC, under a
    random per-process key, of the user and the exact password sent: a different
    password gives a different key, so only bcrypt can say yes to it. Failures are
    never cached. Unknown users are checked against the costliest configured hash,
    so response time does not tell which user names exist. One bcrypt runs at a
    time (the toolkit does the same), so wrong passwords cannot take every core.
    """

    def __init__(self, users: Mapping[str, str], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        import bcrypt  # optional dependency (extra "auth"): only needed once users are configured

        self._bcrypt = bcrypt
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        # Unknown users are checked against the costliest configured hash: as slow as a known user
        # (no user enumeration by timing), and nothing is hashed at start-up, where a decoy of
        # cost 18 would hold readiness for seconds. Its verdict is never used.
        self._decoy = max(self._users.values(), key=lambda h: int(h[4:6]), default=b"")
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        # Refusals by reason (missing, malformed, unknown_user, wrong_password, overloaded),
        # for the daemon to export as apm_exporter_http_auth_failures_total.
        self.failures: Counter[str] = Counter()

    async def check(self, authorization_header: str | None) -> bool:
        """True if the header carries a configured user and its password. bcrypt runs in a
        worker thread, never on the event loop."""
        parsed = self._parse(authorization_header)
        if parsed is None:
            return False
        user, password = parsed
        key = self._cache_key(user, password)
        if self._cached(key):
            return True
        with self._lock:
            if self._pending >= MAX_PENDING_VERIFICATIONS:
                self.failures["overloaded"] += 1
                return False
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
            executor = self._executor
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self._verify, user, password, key)
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        """Stop the bcrypt worker thread (on reload and shutdown)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _parse(self, header: str | None) -> tuple[str, bytes] | None:
        if not header:
            self.failures["missing"] += 1
            return None
        scheme, _, encoded = header.strip().partition(" ")
        try:
            if scheme.lower() != "basic":
                raise ValueError
            raw = base64.b64decode(encoded.strip(), validate=True)
            user_bytes, sep, password = raw.partition(b":")
            if not sep:
                raise ValueError
            user = user_bytes.decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            self.failures["malformed"] += 1
            return None
        return user, password

    def _cache_key(self, user: str, password: bytes) -> bytes:
        encoded = user.encode("utf-8")
        # Length-prefixed so ("ab", "c") and ("a", "bc") never share a key.
        return hmac.digest(self._key, len(encoded).to_bytes(4, "big") + encoded + password, hashlib.sha256)

    def _cached(self, key: bytes) -> bool:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        return False

    def _verify(self, user: str, password: bytes, key: bytes) -> bool:
        hashed = self._users.get(user)
        # bcrypt only reads the first 72 bytes; hashes made by htpasswd were made from those.
        candidate = password[:72]
        with self._bcrypt_lock:
            if hashed is None:
                if self._decoy:
                    self._bcrypt.checkpw(candidate, self._decoy)
                ok = False
            else:
                ok = self._bcrypt.checkpw(candidate, hashed)
        if not ok:
            self.failures["unknown_user" if hashed is None else "wrong_password"] += 1
            return False
        with self._lock:
            self._cache[key] = None
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True
