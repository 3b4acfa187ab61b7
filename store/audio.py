"""Recording files: WAV (PCM, GSM 6.10) header and chunk parsing, raw GSM frames, MP3 frame sync, duration,
empty-file detection, level envelope."""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidInput
from .i18n import N_

#: WAVE format tags we read (RFC 2361).
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_GSM610 = 0x0031
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: Size of a canonical PCM WAV header: a file of exactly this size with no data is an empty recording.
EMPTY_WAV_SIZE = 44
AUDIO_EXTENSIONS = {".wav", ".mp3"}
#: How many zero bytes of padding may follow an MP3's ID3v2 tag before its first MPEG audio frame.
MP3_SYNC_WINDOW = 64 * 1024
# MPEG audio frame headers (ISO 11172-3, 13818-3 and the MPEG 2.5 extension): kbit/s by
# (MPEG-1?, layer) and bitrate index 1-14; sample rates by version bits and index 0-2.
_MP3_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}
#: Asterisk's own formats CIM parses: `wav16` is a 16 kHz PCM WAV; `gsm` is raw GSM 06.10 (MixMonitor,
#: FreePBX MIXMON_FORMAT=gsm): 33-byte frames of 20 ms, each starting with the signature nibble 0xD.
WAV_EXTENSIONS = {".wav", ".wav16"}
GSM_EXTENSIONS = {".gsm"}
GSM_FRAME_BYTES = 33
GSM_FRAME_SECONDS = 0.020


class AudioError(InvalidInput):
    """A recording file that is not audio we can register (truncated, not RIFF, unknown format)."""


@dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav-pcm", "wav-gsm", "gsm", "mp3"
    duration_s: float | None
    is_empty: bool
    channels: int | None = None
    sample_rate: int | None = None
    bits_per_sample: int | None = None
    data_offset: int | None = None
    data_size: int | None = None


def is_audio_name(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in AUDIO_EXTENSIONS or suffix in WAV_EXTENSIONS or suffix in GSM_EXTENSIONS


def probe_file(path: Path) -> AudioInfo:
    """Parse the audio header of the file at `path` (blocking: call it in a thread)."""
    from .keys import open_plain, plain_size  # a sealed recording is parsed as its plaintext

    with open_plain(path) as fh:
        return probe(fh, path.name, plain_size(path))


def probe(fh: BinaryIO, name: str, size: int) -> AudioInfo:
    """Parse an open file: WAV by its RIFF chunks; MP3 by its MPEG audio frames (frame sync)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".mp3":
        return _probe_mp3(fh, name, size)
    if suffix in GSM_EXTENSIONS:
        return _probe_gsm(fh, name, size)
    if suffix not in WAV_EXTENSIONS:
        raise AudioError(N_("{name} is not a recording format CIM accepts (wav, WAV, wav16, gsm, mp3)"), name=name)
    return _probe_wav(fh, name, size)


def _probe_mp3(fh: BinaryIO, name: str, size: int) -> AudioInfo:
    """An MP3 is accepted when, after an optional ID3v2 tag (and zero padding), an MPEG audio frame starts.

    The next frame must begin exactly where the first one's header says it ends (or the file ends
    there), so a text file, a WAV renamed .mp3, an HTML error page or a tag without audio is
    refused by content, not trusted by its name. Duration is left to the CDR (a VBR file would need
    every frame read).
    """
    if size == 0:
        raise AudioError(N_("{name} is an empty file"), name=name)
    fh.seek(0)
    head = fh.read(10)
    start = 0
    if len(head) == 10 and head[:3] == b"ID3" and all(b < 0x80 for b in head[6:10]):
        start = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
        if head[5] & 0x10:  # a footer repeats the header at the tag's end
            start += 10
        if start >= size:
            raise AudioError(N_("{name} is not an MP3 recording: an ID3 tag without any audio"), name=name)
    fh.seek(start)
    window = fh.read(MP3_SYNC_WINDOW + 4)
    at = len(window) - len(window.lstrip(b"\0"))  # encoders may pad after the tag; nothing else comes first
    length = _mp3_frame_length(window[at : at + 4])
    if length is not None:
        following = start + at + length
        if following == size:
            return AudioInfo(format="mp3", duration_s=None, is_empty=False)
        if following < size:
            fh.seek(following)
            if _mp3_frame_length(fh.read(4)) is not None:
                return AudioInfo(format="mp3", duration_s=None, is_empty=False)
    raise AudioError(
        N_("{name} is not an MP3 recording (no MPEG audio frames where the audio should start)"), name=name
    )


def _mp3_frame_length(header: bytes) -> int | None:
    """The byte length of the MPEG audio frame this 4-byte header starts, or None if it is no valid header."""
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xE0) != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 0b11, (header[1] >> 1) & 0b11
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 0b11, (header[2] >> 1) & 1
    if version == 0b01 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values; free-format (index 0) has no length in its header
    layer = 4 - layer_bits
    mpeg1 = version == 0b11
    bitrate = _MP3_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MP3_RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if (layer == 2 or mpeg1) else 72
    return per_frame * bitrate // rate + padding


def _probe_gsm(fh: BinaryIO, name: str, size: int) -> AudioInfo:
    """Raw GSM 06.10: whole 33-byte frames, each with the 0xD signature; the duration is 20 ms a frame."""
    if size == 0:
        return AudioInfo(
            format="gsm", duration_s=0.0, is_empty=True, channels=1, sample_rate=8000, data_offset=0, data_size=0
        )
    if size % GSM_FRAME_BYTES:
        raise AudioError(N_("{name} is truncated: {size} bytes are not whole 33-byte GSM frames"), name=name, size=size)
    frames = size // GSM_FRAME_BYTES
    # check the signature of the first frames and of a spread of frames through the file
    step = max(1, frames // 64)
    for index in list(range(min(frames, 16))) + list(range(0, frames, step)):
        fh.seek(index * GSM_FRAME_BYTES)
        head = fh.read(1)
        if len(head) != 1 or head[0] >> 4 != 0xD:
            raise AudioError(
                N_("{name} is not raw GSM audio (frame {index} lacks the GSM signature)"), name=name, index=index + 1
            )
    return AudioInfo(
        format="gsm",
        duration_s=round(frames * GSM_FRAME_SECONDS, 3),
        is_empty=False,
        channels=1,
        sample_rate=8000,
        data_offset=0,
        data_size=size,
    )


def _probe_wav(fh: BinaryIO, name: str, size: int) -> AudioInfo:
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(N_("{name} is not a WAV file (no RIFF/WAVE header)"), name=name)
    fmt: tuple[int, int, int, int, int, int] | None = None
    fact_samples: int | None = None
    pos = 12
    while True:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            if fmt is None:
                raise AudioError(N_("{name} is truncated: no format chunk"), name=name)
            raise AudioError(N_("{name} is truncated: no data chunk"), name=name)
        chunk_id, chunk_size = struct.unpack("<4sI", header)
        body_at = pos + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16 or body_at + chunk_size > size:
                raise AudioError(N_("{name} has a broken format chunk"), name=name)
            fmt = struct.unpack("<HHIIHH", fh.read(16))
        elif chunk_id == b"fact" and chunk_size >= 4:
            raw = fh.read(4)
            if len(raw) == 4:
                fact_samples = struct.unpack("<I", raw)[0]
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(N_("{name} has its data before the format chunk"), name=name)
            return _info(name, size, fmt, fact_samples, body_at, chunk_size)
        # chunks are word-aligned: an odd size is followed by one pad byte
        pos = body_at + chunk_size + (chunk_size & 1)
        if pos > size:
            raise AudioError(
                N_("{name} is truncated inside the {chunk!r} chunk"), name=name, chunk=chunk_id.decode("latin-1")
            )


def _info(
    name: str,
    size: int,
    fmt: tuple[int, int, int, int, int, int],
    fact_samples: int | None,
    data_at: int,
    data_size: int,
) -> AudioInfo:
    tag, channels, rate, byte_rate, block_align, bits = fmt
    if channels == 0 or rate == 0:
        raise AudioError(N_("{name} declares no channels or a zero sample rate"), name=name)
    available = size - data_at
    if data_size > available:
        raise AudioError(
            N_("{name} is truncated: {available} of {data_size} audio bytes present"),
            name=name,
            available=available,
            data_size=data_size,
        )
    if data_size == 0 and available > 0:
        # Asterisk fills in the sizes when it closes the file: still being recorded, or never closed
        raise AudioError(N_("{name} has an unfinished header (the PBX may still be recording it)"), name=name)
    is_empty = data_size == 0
    if tag in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE):
        if bits not in (8, 16, 24, 32) or block_align != channels * bits // 8:
            raise AudioError(
                N_("{name} has an inconsistent PCM format ({bits} bits, block {block_align})"),
                name=name,
                bits=bits,
                block_align=block_align,
            )
        duration = data_size / (rate * block_align)
        kind = "wav-pcm"
    elif tag == WAVE_FORMAT_GSM610:
        if block_align != 65 or byte_rate == 0:
            raise AudioError(
                N_("{name} has an inconsistent GSM 6.10 format (block {block_align})"),
                name=name,
                block_align=block_align,
            )
        # 65 bytes hold 320 samples (two GSM frames, Microsoft's packing)
        samples = fact_samples if fact_samples is not None else (data_size // 65) * 320
        duration = samples / rate
        kind = "wav-gsm"
    else:
        raise AudioError(
            N_("{name} uses WAVE format 0x{tag:04x}, which CIM does not read (PCM or GSM 6.10 only)"),
            name=name,
            tag=tag,
        )
    return AudioInfo(
        format=kind,
        duration_s=round(duration, 3),
        is_empty=is_empty,
        channels=channels,
        sample_rate=rate,
        bits_per_sample=bits,
        data_offset=data_at,
        data_size=data_size,
    )


def level_envelope(path: Path, buckets: int = 120) -> list[float]:
    """Peak level (0..1) of each of `buckets` equal slices of a PCM WAV; [] for formats we cannot decode.

    Blocking: call it in a thread. Reads the samples once; a sparkline of it shows where people spoke.
    """
    info = probe_file(path)
    if info.format != "wav-pcm" or info.is_empty or info.bits_per_sample not in (8, 16):
        return []
    from .keys import open_plain

    with open_plain(path) as fh:
        fh.seek(info.data_offset or 0)
        raw = fh.read(info.data_size or 0)
    if info.bits_per_sample == 16:
        samples = array("h")
        samples.frombytes(raw[: len(raw) - len(raw) % 2])
        if samples.itemsize != 2:  # pragma: no cover - every platform CIM runs on has 2-byte shorts
            return []
        if struct.pack("=h", 1) != struct.pack("<h", 1):
            samples.byteswap()
        full_scale = 32768.0
        values = [abs(s) for s in samples]
    else:
        values = [abs(b - 128) for b in raw]
        full_scale = 128.0
    if not values:
        return []
    buckets = max(1, min(buckets, len(values)))
    step = len(values) / buckets
    return [
        round(max(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) / full_scale, 4)
        for i in range(buckets)
    ]
