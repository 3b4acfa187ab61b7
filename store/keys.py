"""Crypto-shredding (docs/SECURITY.md): per-conversation data keys, the master key that wraps them, sealed text and files.

Every conversation's transcript lines and recording files are sealed with its own 256-bit data key
(AES-256-GCM). Data keys live in the key ring, a small SQLite file OUTSIDE the data directory
(`<data dir>-keys/keyring.sqlite3`, attached to each connection as `keyring`), each wrapped by the master
key (a file outside the data directory too, or a systemd credential). The data directory — and so every
`cim backup` of it — holds only ciphertext and key ids. The purge deletes a conversation's data key from
the key ring (and leaves a tombstone without personal data): from then on no copy of the conversation,
in the database, a backup or a stray file, can be read by anyone, without touching those copies.

Format of a sealed text (messages.text as a BLOB): 0x01 ‖ nonce(12) ‖ AES-GCM(text) with the associated
data `cim-text/<conversation id>/<seq>` (a line cannot be moved to another place or chat).

Format of a sealed file: MAGIC(8) ‖ key id(16) ‖ file nonce(8) ‖ segment size(4, big endian), then the
plaintext in segments of `SEGMENT` bytes, each AES-GCM with the nonce `file nonce ‖ index(4)` and the header,
the index and a last-segment flag as associated data (a cut, reordered or swapped segment fails to open).
Segments make range reads and streaming cheap: reading byte N decrypts one 64 KiB segment.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError, InvalidInput, NotFound, Text
from .i18n import N_

if TYPE_CHECKING:  # the service names the repository's types only; its SQL is the backend's (store/sqlite/)
    import sqlite3

    import aiosqlite

    from .sqlite.database import Transaction
    from .sqlite.keys import KeyRingState, KeysRepository

MASTER_FORMAT = "cim-master-key/1"
TEXT_VERSION = b"\x01"
MAGIC = b"CIMSEAL1"
SEGMENT = 64 * 1024
TAG = 16
HEADER = len(MAGIC) + 16 + 8 + 4
#: What staff read in place of a line or a file whose key the purge destroyed.
DELETED_MARK = "deleted (§6)"


class ContentDeleted(NotFound):
    """The conversation's data key was destroyed by the purge (§6): its content can never be read again."""

    code = "deleted"


class SealBroken(InvalidInput):
    """A sealed line or file does not open with its key: changed, cut, or sealed for another conversation."""

    code = "tampered"


# -- the master key -----------------------------------------------------------------------------------


@dataclass
class MasterKey:
    path: Path
    keys: dict[int, bytes] = field(repr=False)  # never in a log line or a traceback

    @property
    def current(self) -> int:
        return max(self.keys)

    def key_id(self, generation: int) -> str:
        """A name for a generation that reveals nothing of it (backups, fsck, the escrow check)."""
        return hmac.new(self.keys[generation], b"cim-master-key-id", hashlib.sha256).hexdigest()[:16]

    def wrap(self, key_id: bytes, data_key: bytes, generation: int | None = None) -> tuple[int, bytes]:
        generation = self.current if generation is None else generation
        nonce = os.urandom(12)
        return generation, nonce + AESGCM(self.keys[generation]).encrypt(nonce, data_key, b"cim-data-key/" + key_id)

    def unwrap(self, key_id: bytes, generation: int, wrapped: bytes) -> bytes:
        key = self.keys.get(generation)
        if key is None:
            raise ConfigError(
                N_(
                    "the master key file {path} has no generation {generation}, which the key ring "
                    "needs; put the escrowed master key back (docs/DEPLOY.md)"
                ),
                path=self.path,
                generation=generation,
            )
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], b"cim-data-key/" + key_id)
        except InvalidTag:
            raise ConfigError(
                N_("the master key file {path} does not open the key ring's data keys (a wrong or changed master key)"),
                path=self.path,
            ) from None


def load_master(path: Path) -> MasterKey | None:
    """The master key file, or None when it does not exist; one readable by others or malformed is refused."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            N_("cannot read the master key file {path}: {strerror}"), path=path, strerror=exc.strerror
        ) from exc
    credential = bool(os.environ.get("CREDENTIALS_DIRECTORY")) and path.parent == Path(
        os.environ["CREDENTIALS_DIRECTORY"]
    )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and not credential:
        raise ConfigError(
            N_("the master key file {path} is open to other users (mode {mode:o}); run `chmod 600 {path}`"),
            path=path,
            mode=stat.S_IMODE(st.st_mode),
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != MASTER_FORMAT:
            raise ValueError("unknown format")
        keys = {int(k["generation"]): bytes.fromhex(k["key"]) for k in doc["keys"]}
        if not keys or any(len(k) != 32 for k in keys.values()):
            raise ValueError("no 256-bit key")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            N_("the master key file {path} is not a CIM master key file ({exc})"), path=path, exc=exc
        ) from None
    return MasterKey(path, keys)


def _write_master(path: Path, keys: dict[int, bytes], *, exclusive: bool) -> None:
    from .clock import to_iso, system_clock

    doc = {
        "format": MASTER_FORMAT,
        "keys": [
            {"generation": g, "created_at": to_iso(system_clock()), "key": k.hex()} for g, k in sorted(keys.items())
        ],
    }
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if exclusive and path.exists():
            raise ConfigError(N_("the master key file {path} already exists"), path=path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(doc, indent=2).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ConfigError(
            N_(
                "cannot write the master key file {path}: {strerror}; set CIM_MASTER_KEY_FILE to a "
                "writable place outside the data directory"
            ),
            path=path,
            strerror=exc.strerror or exc,
        ) from exc


def check_master(state: "KeyRingState", path: Path) -> tuple[MasterKey, str | None]:
    """Load the master key and check it against the key ring's state; create it for a key ring that holds no
    key yet. Returns the key and, when they changed, the master key ids to record in the key ring (JSON).

    Runs on the writer's thread as the store opens (store/sqlite/keys.py `open_master`). A missing or wrong
    key is a clear refusal at start: nothing is written, nothing is lost (put the escrowed key back).
    """
    keys_held = state.keys_held
    ids = {int(g): v for g, v in json.loads(state.master_ids or "{}").items()}
    if state.sealed_rows and not keys_held and not state.shredded:
        raise ConfigError(
            N_(
                "the database holds sealed conversations but the key ring {ring} holds no key: it was "
                "replaced or lost; put the key ring back (CIM_KEYRING_FILE, docs/DEPLOY.md)"
            ),
            ring=state.ring_file,
        )
    master = load_master(path)
    if master is None:
        if keys_held or ids:
            raise ConfigError(
                N_(
                    "the master key file {path} is missing, but the key ring holds {keys_held} wrapped "
                    "data keys: put the master key back from its escrow copy (docs/DEPLOY.md); without "
                    "it no transcript or recording can be read"
                ),
                path=path,
                keys_held=keys_held,
            )
        _write_master(path, {1: AESGCM.generate_key(bit_length=256)}, exclusive=True)
        master = load_master(path)
        assert master is not None
    for generation, key_id in ids.items():
        if generation in master.keys and master.key_id(generation) != key_id:
            raise ConfigError(
                N_(
                    "the master key file {path} is not the key of this key ring (generation "
                    "{generation} is {has}, the key ring needs {needs})"
                ),
                path=path,
                generation=generation,
                has=master.key_id(generation),
                needs=key_id,
            )
    missing = sorted(state.generations - set(master.keys))
    if missing:
        raise ConfigError(
            N_(
                "the master key file {path} lacks generation(s) {missing} that wrap data keys; put the "
                "escrowed master key back (docs/DEPLOY.md)"
            ),
            path=path,
            missing=missing,
        )
    if state.generations and state.sample is not None:  # one real unwrap proves the key, not only its name
        master.unwrap(*state.sample)
    new_ids = {g: master.key_id(g) for g in master.keys}
    return master, (json.dumps({str(g): v for g, v in new_ids.items()}) if new_ids != ids else None)


# -- data keys ----------------------------------------------------------------------------------------

_WORD = re.compile(r"[\w@.+-]+")


def words(text: str) -> set[str]:
    """The normalised words of a text for the blind index: casefolded runs of letters/digits and the
    characters of an e-mail address; each also split at `@ . + -` so a name inside an address matches."""
    found: set[str] = set()
    for token in _WORD.findall(text.casefold()):
        token = token.strip(".-+@")
        if not token:
            continue
        found.add(token)
        found.update(part for part in re.split(r"[@.+-]", token) if part)
    return found


class DataKey:
    """One conversation's unwrapped data key; kept in memory only while the conversation is being handled."""

    __slots__ = ("key_id", "conversation_id", "_aead", "_words")

    def __init__(self, key_id: bytes, conversation_id: int, raw: bytes) -> None:
        self.key_id = key_id
        self.conversation_id = conversation_id
        self._aead = AESGCM(raw)
        self._words = hmac.new(raw, b"cim-word-index", hashlib.sha256).digest()

    def __repr__(self) -> str:  # never the key itself, in a log or a traceback
        return f"DataKey(conversation {self.conversation_id})"

    def _aad(self, seq: int) -> bytes:
        return b"cim-text/%d/%d" % (self.conversation_id, seq)

    def seal_text(self, seq: int, text: str) -> bytes:
        return self._seal(self._aad(seq), text)

    def open_text(self, seq: int, blob: bytes) -> str:
        return self._open(self._aad(seq), blob, f"line {seq} of conversation {self.conversation_id}")

    def _seal(self, aad: bytes, text: str) -> bytes:
        nonce = os.urandom(12)
        return TEXT_VERSION + nonce + self._aead.encrypt(nonce, text.encode("utf-8"), aad)

    def _open(self, aad: bytes, blob: bytes, what: str) -> str:
        if blob[:1] != TEXT_VERSION:
            raise SealBroken(N_("{what} is not a sealed text"), what=Text(what))
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], aad).decode("utf-8")
        except InvalidTag:
            raise SealBroken(N_("{what} does not open: it was changed or belongs elsewhere"), what=Text(what)) from None

    # Staff notes kept beside a transcript, in the same format as a line with their own associated data
    # (a note cannot be passed off as a line, another note, or a note of another chat or call).
    def _staff_note_aad(self, note_id: int) -> bytes:
        return b"cim-staff-note/%d/%d" % (self.conversation_id, note_id)

    def seal_staff_note(self, note_id: int, text: str) -> bytes:
        """A supervisor's whisper (chat_staff_notes.text), sealed with its chat's data key."""
        return self._seal(self._staff_note_aad(note_id), text)

    def open_staff_note(self, note_id: int, blob: bytes) -> str:
        return self._open(
            self._staff_note_aad(note_id), blob, f"staff note {note_id} of conversation {self.conversation_id}"
        )

    @staticmethod
    def _call_note_aad(linkedid: str) -> bytes:
        # named by the call alone: a note sealed before its call record exists keeps its seal when linked
        return b"cim-call-note/" + linkedid.encode("utf-8")

    def seal_call_note(self, linkedid: str, text: str) -> bytes:
        """A consultant's note on a call (call_notes.note), sealed with the key named by call_notes.key_id."""
        return self._seal(self._call_note_aad(linkedid), text)

    def open_call_note(self, linkedid: str, blob: bytes) -> str:
        return self._open(self._call_note_aad(linkedid), blob, f"the note on call {linkedid}")

    def token(self, word: str) -> bytes:
        return hmac.new(self._words, word.encode("utf-8"), hashlib.sha256).digest()[:16]

    def tokens(self, text: str) -> set[bytes]:
        return {self.token(w) for w in words(text)}

    # files
    def segment_aead(self) -> AESGCM:
        return self._aead


def sealed_of(
    value: Any, key: DataKey | None, opener: Callable[[DataKey, bytes], str], *, deleted: str = DELETED_MARK
) -> str:
    """A stored staff note as text: plain (not sealed yet) as it is, sealed opened with `key`, and
    `deleted` when its key is gone (the purge destroyed it, §6)."""
    if isinstance(value, str):
        return value
    if key is None:
        return deleted
    return opener(key, bytes(value))


def text_of(value: Any, key: DataKey | None, seq: int, *, deleted: str | None = None) -> str:
    """A stored line as text: a sealed one opened with `key`; a line not yet sealed (before the migration)
    as it is; a sealed line whose key is gone as `deleted` (or ContentDeleted when None)."""
    if isinstance(value, str):
        return value
    if key is None:
        if deleted is not None:
            return deleted
        raise ContentDeleted(N_("this conversation was deleted (§6): its key was destroyed by the purge"))
    return key.open_text(seq, bytes(value))


# -- sealed files -------------------------------------------------------------------------------------


def is_sealed_header(head: bytes) -> bool:
    return head[: len(MAGIC)] == MAGIC


def file_key_id(path: Path) -> bytes | None:
    """The key id in a sealed file's header, or None for a plain file."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER)
    return head[len(MAGIC) : len(MAGIC) + 16] if is_sealed_header(head) and len(head) == HEADER else None


class SealWriter:
    """Writes a sealed file segment by segment to an open binary file (which the caller fsyncs/closes)."""

    def __init__(self, out: BinaryIO, key: DataKey) -> None:
        self.out = out
        self.aead = key.segment_aead()
        self.nonce = os.urandom(8)
        self.header = MAGIC + key.key_id + self.nonce + SEGMENT.to_bytes(4, "big")
        self.buffer = bytearray()
        self.index = 0
        out.write(self.header)

    def _emit(self, data: bytes, last: bool) -> None:
        aad = self.header + self.index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")
        self.out.write(self.aead.encrypt(self.nonce + self.index.to_bytes(4, "big"), data, aad))
        self.index += 1

    def write(self, data: bytes | memoryview) -> int:
        self.buffer += data
        while len(self.buffer) > SEGMENT:  # keep at least one byte back: the last segment is flagged
            self._emit(bytes(self.buffer[:SEGMENT]), False)
            del self.buffer[:SEGMENT]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self.buffer), True)
        self.buffer.clear()


def seal_bytes(data: bytes, key: DataKey) -> bytes:
    out = io.BytesIO()
    writer = SealWriter(out, key)
    writer.write(data)
    writer.close()
    return out.getvalue()


class SealedReader(io.RawIOBase):
    """A sealed file read as its plaintext: seekable, range reads decrypt only the segments they touch."""

    def __init__(self, path: Path, key: DataKey, fh: BinaryIO | None = None) -> None:
        super().__init__()
        self._fh = fh or open(path, "rb")
        self.path = path
        self._header = self._fh.read(HEADER)
        if len(self._header) != HEADER or not is_sealed_header(self._header):
            self._fh.close()
            raise SealBroken(N_("{name} is not a sealed recording"), name=path.name)
        if self._header[len(MAGIC) : len(MAGIC) + 16] != key.key_id:
            self._fh.close()
            raise SealBroken(N_("{name} is sealed for another conversation"), name=path.name)
        self._nonce = self._header[len(MAGIC) + 16 : len(MAGIC) + 24]
        self._segment = int.from_bytes(self._header[-4:], "big")
        self._aead = key.segment_aead()
        body = os.fstat(self._fh.fileno()).st_size - HEADER
        stride = self._segment + TAG
        self._count = max(1, -(-body // stride))
        self.size = body - TAG * self._count
        if body < TAG or self.size < 0:
            self._fh.close()
            raise SealBroken(N_("{name} is cut short"), name=path.name)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self._fd = self._fh.fileno()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _load(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        stride = self._segment + TAG
        data = os.pread(self._fd, stride, HEADER + index * stride)  # no seek: concurrent range reads are safe
        last = index == self._count - 1
        aad = self._header + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")
        try:
            plain = self._aead.decrypt(self._nonce + index.to_bytes(4, "big"), data, aad)
        except InvalidTag:
            raise SealBroken(
                N_("{name} does not open at segment {index}: the file was changed or cut"),
                name=self.path.name,
                index=index,
            ) from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            index, skip = divmod(self._pos, self._segment)
            plain = self._load(index)
            n = min(len(plain) - skip, len(view) - done)
            view[done : done + n] = memoryview(plain)[skip : skip + n]
            done += n
            self._pos += n
        return done

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        parts = []
        while self._pos < end:
            index, skip = divmod(self._pos, self._segment)
            plain = self._load(index)
            take = end - self._pos
            piece = plain if skip == 0 and take >= len(plain) else plain[skip : skip + take]
            parts.append(piece)
            self._pos += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()

    def fileno(self) -> int:
        return self._fh.fileno()


# Recording files are opened by blocking code on worker threads (probe, levels, transcoding, hashing,
# exports); each open Store registers how it finds a data key by id, so `open_plain(path)` works
# anywhere in the store without carrying keys through every call.
_resolvers: list[Callable[[bytes], DataKey | None]] = []
_resolvers_lock = threading.Lock()


def register_resolver(fn: Callable[[bytes], DataKey | None]) -> None:
    with _resolvers_lock:
        _resolvers.append(fn)


def unregister_resolver(fn: Callable[[bytes], DataKey | None]) -> None:
    with _resolvers_lock:
        if fn in _resolvers:
            _resolvers.remove(fn)


def resolve(key_id: bytes) -> DataKey | None:
    with _resolvers_lock:
        resolvers = list(_resolvers)
    for fn in resolvers:
        key = fn(key_id)
        if key is not None:
            return key
    return None


def open_plain(path: Path | str, flags: int = 0) -> BinaryIO:
    """A recording's plaintext as a seekable binary file: a sealed file is decrypted segment by segment,
    a plain one (not migrated yet) is read as it is. A sealed file whose key the purge destroyed raises
    ContentDeleted; one changed on disk raises SealBroken (at the segment that fails)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | flags)
    fh = os.fdopen(fd, "rb")
    head = fh.read(HEADER)
    if not (len(head) == HEADER and is_sealed_header(head)):
        fh.seek(0)
        return fh
    key = resolve(head[len(MAGIC) : len(MAGIC) + 16])
    if key is None:
        fh.close()
        raise ContentDeleted(
            N_("the recording {name} was deleted (§6): its key was destroyed by the purge"), name=path.name
        )
    fh.seek(0)
    return SealedReader(path, key, fh)  # type: ignore[return-value]  # seekable; caches the segment it is in


def plain_size(path: Path) -> int:
    """The plaintext size of a recording file (sealed or not) without reading it."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(HEADER)
    if len(head) == HEADER and is_sealed_header(head):
        segment = int.from_bytes(head[-4:], "big")
        body = size - HEADER
        return body - TAG * max(1, -(-body // (segment + TAG)))
    return size


def sha256_plain(path: Path, flags: int = 0) -> str:
    digest = hashlib.sha256()
    with open_plain(path, flags) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def seal_file_in_place(path: Path, key: DataKey) -> bool:
    """Seal a plain recording where it lies: written to a temporary file, fsynced, renamed over it (atomic:
    a killed migration leaves either the plain or the sealed file, never half of one). False: already sealed."""
    with open(path, "rb") as src:
        if is_sealed_header(src.read(HEADER)):
            return False
        src.seek(0)
        tmp = path.with_name(f".sealing-{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                writer = SealWriter(out, key)
                while chunk := src.read(1 << 20):
                    writer.write(chunk)
                writer.close()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


# -- the service ----------------------------------------------------------------------------------------


class Keys:
    """The store's key service: creates, finds (unwrapping) and destroys data keys; sync helpers run on the
    writer's thread inside a transaction, the async ones use the reader. Its SQL is the repository's
    (store/sqlite/keys.py)."""

    def __init__(self, repo: "KeysRepository", settings: Any) -> None:
        self.repo = repo
        self.settings = settings
        self.master: MasterKey | None = None
        self._master_mtime = 0

    async def open(self) -> None:
        path = self.settings.master_key_path
        self.master = await self.repo.open_master(lambda state: check_master(state, path))
        try:
            self._master_mtime = self.master.path.stat().st_mtime_ns
        except OSError:
            self._master_mtime = 0
        register_resolver(self.resolve_sync)

    def close(self) -> None:
        unregister_resolver(self.resolve_sync)
        self.repo.close()

    # creating
    def _refresh(self) -> None:
        """Reread the master key file when it changed (`cim keys rotate-master` run by another process), so a
        running server wraps new keys with the newest generation; a file that cannot be read keeps the old."""
        assert self.master is not None, "keys are not open"
        try:
            mtime = self.master.path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._master_mtime:
            return
        try:
            fresh = load_master(self.master.path)
        except ConfigError:
            return
        if fresh is not None:
            self.master, self._master_mtime = MasterKey(fresh.path, {**self.master.keys, **fresh.keys}), mtime

    def _new_key(self, conn: "sqlite3.Connection", conversation_id: int, now: str) -> DataKey:
        self._refresh()
        assert self.master is not None, "keys are not open"
        key_id = secrets.token_bytes(16)
        raw = AESGCM.generate_key(bit_length=256)
        generation, wrapped = self.master.wrap(key_id, raw)
        self.repo.insert_data_key_sync(conn, key_id, conversation_id, generation, wrapped, now)
        return DataKey(key_id, conversation_id, raw)

    def create_sync(self, conn: "sqlite3.Connection", conversation_id: int, now: str) -> DataKey:
        """A new data key for a conversation, in the caller's transaction (conversation row and key ring)."""
        key = self._new_key(conn, conversation_id, now)
        self.repo.set_conversation_key_sync(conn, conversation_id, key.key_id)
        return key

    def create_pending_sync(self, conn: "sqlite3.Connection", now: str) -> DataKey:
        """A data key for content whose conversation does not exist yet (a consultant's note written during
        a call, before its CDR: store/call_notes.py). Recorded in the key ring with conversation 0 until
        the call adopts it (`store.sqlite.call_notes.adopt_note_keys_sync`); the note names the key by its id."""
        return self._new_key(conn, 0, now)

    def by_id_sync(self, conn: "sqlite3.Connection", key_id: bytes | None) -> DataKey | None:
        """A data key by its id (in the caller's transaction); None when there is none or it was destroyed."""
        if key_id is None:
            return None
        row = self.repo.data_key_sync(conn, bytes(key_id))
        return None if row is None else self._unwrap(row[0], key_id, row[1], row[2])

    async def read_key_id(self, key_id: bytes | None) -> DataKey | None:
        """by_id_sync on the reader connection."""
        if key_id is None:
            return None
        row = await self.repo.data_key(bytes(key_id))
        return None if row is None else self._unwrap(row[0], key_id, row[1], row[2])

    @staticmethod
    def shred_unlinked_notes_sync(conn: "sqlite3.Connection", cutoff: str, now: str) -> int:
        """Destroy the keys of call notes that never met their call record and are past their purge date
        (deleted by the purge with the other unlinked queue facts, store/service_report.py)."""
        from .sqlite.keys import shred_unlinked_notes_sync

        return shred_unlinked_notes_sync(conn, cutoff, now)

    def _unwrap(self, conversation_id: int, key_id: bytes, generation: int, wrapped: bytes) -> DataKey:
        assert self.master is not None, "keys are not open"
        return DataKey(bytes(key_id), conversation_id, self.master.unwrap(bytes(key_id), generation, bytes(wrapped)))

    def get_sync(
        self, conn: "sqlite3.Connection", conversation_id: int, *, create_at: str | None = None
    ) -> DataKey | None:
        """The conversation's data key; None when it has none (not sealed yet) or it was destroyed. With
        `create_at`, a conversation that never had a key gets one now."""
        row = self.repo.conversation_key_sync(conn, conversation_id)
        if row is None:
            return None
        if row[0] is None:
            return self.create_sync(conn, conversation_id, create_at) if create_at else None
        if row[1] is None:
            return None  # destroyed (purged) or lost: the caller decides what to show
        return self._unwrap(conversation_id, row[0], row[1], row[2])

    async def get(
        self, tx: "Transaction | aiosqlite.Connection", conversation_id: int, *, create_at: str | None = None
    ) -> DataKey | None:
        """get_sync inside the caller's write transaction `tx`."""
        return await self.repo.run_in(tx, lambda conn: self.get_sync(conn, conversation_id, create_at=create_at))

    async def read_key(self, conversation_id: int) -> DataKey | None:
        """The conversation's data key for reading (the reader connection); None when not sealed or destroyed."""
        row = await self.repo.conversation_key(conversation_id)
        if row is None or row[0] is None or row[1] is None:
            return None
        return self._unwrap(conversation_id, row[0], row[1], row[2])

    async def read_keys(self, conversation_ids: Iterable[int]) -> dict[int, DataKey]:
        return {
            conversation_id: self._unwrap(conversation_id, key_id, generation, wrapped)
            for conversation_id, key_id, generation, wrapped in await self.repo.conversation_keys(conversation_ids)
        }

    async def is_shredded(self, conversation_id: int) -> bool:
        """True when the conversation's content is sealed under a key that no longer exists (purged, §6)."""
        return await self.repo.is_shredded(conversation_id)

    async def texts(self, conversation_id: int, rows: list[Any], *, deleted: str | None = None) -> list[str]:
        """The texts of stored message rows (with `seq` and `text`) of one conversation, opened."""
        key = await self.read_key(conversation_id) if any(not isinstance(r["text"], str) for r in rows) else None
        return [text_of(r["text"], key, r["seq"], deleted=deleted) for r in rows]

    def resolve_sync(self, key_id: bytes) -> DataKey | None:
        """A data key by id for a sealed file (any thread): its own read-only connection to the key ring."""
        if self.master is None:
            return None
        row = self.repo.data_key_readonly(self.settings.keyring_path, key_id)
        if row is None:
            return None
        return self._unwrap(row[0], key_id, row[1], row[2])

    # destroying
    @staticmethod
    def shred_sync(conn: "sqlite3.Connection", conversation_ids: list[int], now: str) -> int:
        """Destroy the data keys of these conversations (in the purge's transaction), leaving tombstones."""
        from .sqlite.keys import shred_sync

        return shred_sync(conn, conversation_ids, now)

    @staticmethod
    def shred_orphans_sync(conn: "sqlite3.Connection", cutoff: str, now: str) -> int:
        """Destroy data keys whose conversation this database does not have and that were made before `cutoff`
        (a whole retention period before the purge's): after a restore of an older backup, the keys of
        conversations the restore lost would otherwise keep them readable in newer backups for ever. Such a
        conversation is past its purge date (its key is as old as it, or older), and a held one is always in
        the database."""
        from .sqlite.keys import shred_orphans_sync

        return shred_orphans_sync(conn, cutoff, now)

    async def sealing_counts(self) -> dict[str, int]:
        """How much is sealed (`cim keys status`): conversations, sealed ones, keys held and destroyed, plain lines."""
        return await self.repo.sealing_counts()

    def describe(self) -> dict[str, Any]:
        """What a backup needs to be read (no key material): the master key id and generation, the key ring."""
        assert self.master is not None
        return {
            "master_key_id": self.master.key_id(self.master.current),
            "master_key_generation": self.master.current,
            "master_key_generations": sorted(self.master.keys),
            "keyring": str(self.settings.keyring_path),
        }

    async def rotate_master(self) -> tuple[int, int]:
        """A new master key generation; every data key is wrapped again with it. Returns (generation, keys)."""
        assert self.master is not None
        keys = dict(self.master.keys)
        generation = max(keys) + 1
        keys[generation] = AESGCM.generate_key(bit_length=256)
        _write_master(self.master.path, keys, exclusive=False)
        fresh = load_master(self.master.path)
        assert fresh is not None
        old = self.master

        def rewrap_one(key_id: bytes, gen: int, wrapped: bytes) -> tuple[int, bytes]:
            _, new = fresh.wrap(key_id, old.unwrap(key_id, gen, wrapped), generation)
            return generation, new

        count = await self.repo.rewrap(rewrap_one, json.dumps({str(g): fresh.key_id(g) for g in fresh.keys}))
        self.master = fresh
        return generation, count

    async def retire_master(self, keep: int) -> list[int]:
        """Retire the master key generations older than `keep` once no data key is wrapped by them."""
        assert self.master is not None
        used = await self.repo.generations()
        drop = [g for g in self.master.keys if g < keep and g not in used]
        if drop:
            keys = {g: k for g, k in self.master.keys.items() if g not in drop}
            _write_master(self.master.path, keys, exclusive=False)
            self.master = load_master(self.master.path)
        return drop


# -- an external player -------------------------------------------------------------------------------


def player_input(path: Path) -> tuple[str, BinaryIO | None]:
    """What to hand a configured player for a recording: its path for a plain file; for a sealed one `-`
    (the player reads standard input) and the plaintext stream to feed it — no decrypted copy on disk."""
    if file_key_id(path) is None:
        return str(path), None
    return "-", open_plain(path)


async def feed_player(stdin: Any, plain: BinaryIO) -> None:
    """Write a sealed recording's plaintext into a player's standard input, segment by segment."""
    import asyncio

    try:
        while chunk := await asyncio.to_thread(plain.read, SEGMENT):
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the player stopped (the staff member pressed s)
    finally:
        plain.close()
        stdin.close()
