"""The TOTP second factor (RFC 6238, pyotp): secrets sealed with AES-GCM, replay refusal, recovery codes.

The key that seals the secrets lives in a file outside the database (`mfa_key_file`, default
`<data dir>/mfa.key`, created 0600 on first use), so a copy of the database alone (a backup, a
stolen file) does not reveal anyone's second factor. Recovery codes are 80-bit random strings and
are kept only as SHA-256 hashes (a slow hash adds nothing against guessing 80 random bits).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError
from .i18n import N_

INTERVAL = 30
#: Codes of the previous and the next 30-second step are accepted too (clock drift, slow typing).
WINDOW = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read from paper


@dataclass(frozen=True)
class Enrolment:
    """A new TOTP secret to show once: as a QR code of `uri` and as text."""

    secret: str
    uri: str


class SecretBox:
    """Seals TOTP secrets with a 256-bit AES-GCM key kept in a file; the staff id is bound in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def _load(self) -> bytes:
        if self._key is not None:
            return self._key
        if not self.path.exists():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = AESGCM.generate_key(bit_length=256)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first; read theirs
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64encode(key) + b"\n")
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                N_("the second-factor key file {path} is open to other users; run `chmod 600 {path}`"), path=self.path
            )
        try:
            key = base64.b64decode(self.path.read_bytes().strip(), validate=True)
        except (ValueError, OSError) as exc:
            raise ConfigError(
                N_("the second-factor key file {path} cannot be read: {exc}"), path=self.path, exc=exc
            ) from exc
        if len(key) != 32:
            raise ConfigError(N_("the second-factor key file {path} does not hold a 256-bit key"), path=self.path)
        self._key = key
        return key

    def seal(self, staff_id: int, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._load()).encrypt(nonce, secret.encode("ascii"), _aad(staff_id))

    def open(self, staff_id: int, sealed: bytes) -> str:
        try:
            return AESGCM(self._load()).decrypt(sealed[:12], sealed[12:], _aad(staff_id)).decode("ascii")
        except InvalidTag:
            raise ConfigError(
                N_(
                    "a second-factor secret cannot be opened with the key in {path} (another key?); reset that "
                    "person's second factor with `cim users mfa-reset`"
                ),
                path=self.path,
            ) from None


def _aad(staff_id: int) -> bytes:
    return f"cim-totp:{staff_id}".encode("ascii")


def new_enrolment(account: str, issuer: str) -> Enrolment:
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    return Enrolment(secret=secret, uri=pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer))


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // INTERVAL


def matching_step(secret: str, code: str, at: datetime, last_step: int) -> int | None:
    """The time step (within WINDOW of `at`) whose code is `code` and that is later than `last_step`.

    A code of `last_step` or earlier is refused even when it is right: it was already used (replay).
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = step_of(at)
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        if step > last_step and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def looks_like_recovery_code(code: str) -> bool:
    return len(normalise_recovery_code(code)) == 16


def normalise_recovery_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_code_hash(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode("ascii")).hexdigest()
