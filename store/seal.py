"""The office's electronic seal on letters: PAdES (pyHanko) with a PKCS#12 certificate, when one is configured.

`load_seal(settings)` reads `CIM_LETTER_SEAL_P12` and the file named by `CIM_LETTER_SEAL_PASSWORD_FILE`
at start-up and fails loudly on a wrong password, an unreadable, world-readable or expired file, so a
misconfigured seal is found when the service starts and not when the first letter goes out. No seal
configured: `None`, and letters go out unsigned (the register records `sealed = no` per letter).

The seal is a PAdES baseline B-B certification signature (ETSI.CAdES.detached, SHA-256, DocMDP "no
changes"), invisible and printable as PDF/A-2b requires; pyHanko writes it as an incremental update,
so the PDF/A structure of the letter underneath stays as it was (store/pdfa.py checks the result).
"""

from __future__ import annotations

import io
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import CimError, ConfigError
from .i18n import N_

FIELD_NAME = "PieczecUrzedu"


class SealFailed(CimError):
    """The seal could not be applied (the certificate expired since start-up, or pyHanko failed); no letter
    is stored, and the step that wanted it is not taken (one sentence at the edge, like any CimError)."""


@dataclass(frozen=True)
class Seal:
    """A loaded seal certificate: who it names and until when, and the key material for pyHanko."""

    p12_path: Path
    subject: str
    not_before: datetime
    not_after: datetime
    _p12: bytes = field(repr=False)
    _password: bytes = field(repr=False)

    def signer(self) -> Any:
        from pyhanko.sign import signers

        return signers.SimpleSigner.load_pkcs12_data(self._p12, other_certs=[], passphrase=self._password or None)


def load_seal(settings: Any) -> Seal | None:
    """The seal configured in `settings`, or None; a configured seal that cannot be used is a ConfigError."""
    if not settings.letter_seal_p12:
        if settings.letter_seal_password_file:
            raise ConfigError(N_("CIM_LETTER_SEAL_PASSWORD_FILE is set but CIM_LETTER_SEAL_P12 is not"))
        return None
    p12_path = Path(settings.letter_seal_p12)
    if not settings.letter_seal_password_file:
        raise ConfigError(N_("CIM_LETTER_SEAL_P12 needs CIM_LETTER_SEAL_PASSWORD_FILE (a file holding its password)"))
    password_path = Path(settings.letter_seal_password_file)
    data_dir = Path(settings.data_dir).absolute()
    for name, path in (("CIM_LETTER_SEAL_P12", p12_path), ("CIM_LETTER_SEAL_PASSWORD_FILE", password_path)):
        if data_dir in path.absolute().parents:
            raise ConfigError(
                N_(
                    "{name} ({path}) must be outside the data directory {data_dir}: a backup of the "
                    "data directory must not carry the seal's key"
                ),
                name=name,
                path=path,
                data_dir=settings.data_dir,
            )
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(
                N_("{name}: cannot read {path}: {strerror}"), name=name, path=path, strerror=exc.strerror
            ) from None
        if not stat.S_ISREG(mode):
            raise ConfigError(N_("{name}: {path} is not a file"), name=name, path=path)
        if mode & 0o007:
            raise ConfigError(
                N_("{name}: {path} is readable by every user (mode {mode:o}); chmod o-rwx {path}"),
                name=name,
                path=path,
                mode=stat.S_IMODE(mode),
            )
    try:
        p12 = p12_path.read_bytes()
        password = password_path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(N_("cannot read the seal certificate: {exc}"), exc=exc) from None

    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    try:
        key, cert, _ = pkcs12.load_key_and_certificates(p12, password or None)
    except ValueError:
        raise ConfigError(
            N_(
                "CIM_LETTER_SEAL_P12: {p12_path} is not a PKCS#12 file or the password in "
                "{password_path} does not open it"
            ),
            p12_path=p12_path,
            password_path=password_path,
        ) from None
    if key is None or cert is None:
        raise ConfigError(
            N_("CIM_LETTER_SEAL_P12: {p12_path} holds no private key with its certificate"), p12_path=p12_path
        )
    now = datetime.now(timezone.utc)
    if cert.not_valid_after_utc <= now:
        raise ConfigError(
            N_("the seal certificate {p12_path} expired on {expired:%Y-%m-%d}; renew it (docs/DEPLOY.md, Letter seal)"),
            p12_path=p12_path,
            expired=cert.not_valid_after_utc,
        )
    if cert.not_valid_before_utc > now:
        raise ConfigError(
            N_("the seal certificate {p12_path} is valid only from {valid_from:%Y-%m-%d}"),
            p12_path=p12_path,
            valid_from=cert.not_valid_before_utc,
        )
    names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) or cert.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    return Seal(
        p12_path=p12_path,
        subject=subject,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        _p12=p12,
        _password=password,
    )


def apply_seal(pdf: bytes, seal: Seal, *, reason: str = "", location: str = "") -> bytes:
    """`pdf` with the seal added as an incremental PAdES B-B certification signature."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter

    if seal.not_after <= datetime.now(timezone.utc):
        raise SealFailed(
            N_("the seal certificate {p12_path} expired on {expired:%Y-%m-%d}; renew it (docs/DEPLOY.md, Letter seal)"),
            p12_path=seal.p12_path,
            expired=seal.not_after,
        )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    try:
        out = signers.sign_pdf(writer, meta, signer=seal.signer())
    except Exception as exc:  # pyHanko's errors are many and unrelated; one named failure for the caller
        raise SealFailed(N_("the letter could not be sealed: {exc}"), exc=exc) from exc
    return out.getvalue()
