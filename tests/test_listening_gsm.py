"""The pure-Python GSM 06.10 decoder against libgsm: fixtures decoded by sox (which uses libgsm), bit for bit."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from store.audio import probe_file
from store.gsm610 import decode_wav49, pcm_wav

AUDIO = Path(__file__).parent / "fixtures" / "audio"
#: SHA-256 of the 16-bit little-endian samples `sox FILE -e signed -b 16 out.wav` (SoX 14.4.2, libgsm 1.0.22) wrote.
LIBGSM = {
    "pinknoise-gsm.wav": (16000, "fe46652fc6d7bfef794e468e72122d936805e19b6c8d8e94568445da05820400"),
    # random bytes: every saturation and clamping path of the decoder gets exercised
    "random-bits-gsm.wav": (32000, "27b373c07ca38e7e27810c8234a1f0926243476923743ebb2072422289979d6c"),
}


def _samples(name: str):
    path = AUDIO / name
    info = probe_file(path)
    data = path.read_bytes()[info.data_offset : info.data_offset + info.data_size]
    return decode_wav49(data, round(info.duration_s * info.sample_rate))


def test_decoder_is_bit_exact_with_libgsm() -> None:
    for name, (count, digest) in LIBGSM.items():
        samples = _samples(name)
        raw = pcm_wav(samples)[44:]  # little-endian, as sox wrote them
        assert len(samples) == count, name
        assert hashlib.sha256(raw).hexdigest() == digest, name


def test_pcm_wav_is_a_canonical_header_and_the_samples() -> None:
    samples = _samples("pinknoise-gsm.wav")
    wav = pcm_wav(samples)
    assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", wav[40:44])[0] == len(samples) * 2 == len(wav) - 44
    # one 65-byte block is two frames of 160 samples: 2 s of audio are 50 blocks
    assert max(abs(s) for s in samples) > 1000  # sound, not silence


def test_truncated_data_decodes_whole_blocks_only() -> None:
    path = AUDIO / "pinknoise-gsm.wav"
    info = probe_file(path)
    data = path.read_bytes()[info.data_offset : info.data_offset + info.data_size]
    assert len(decode_wav49(data[: 65 * 3 + 20])) == 3 * 320
    assert len(decode_wav49(b"")) == 0
