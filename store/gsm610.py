"""A GSM 06.10 full-rate decoder in pure Python, for Microsoft/Asterisk "wav49" recordings (65-byte blocks).

Browsers do not play WAVE format 0x31, and PyPI has no pure-Python decoder for it, so the listening
page gets a 16-bit PCM WAV decoded here (no external binary at run time). The arithmetic follows the
ETSI 06.10 reference decoder as implemented by libgsm (Jutta Degener and Carsten Bormann, TU Berlin),
word for word: 16-bit saturating additions, `mult_r` rounding and the same filter state, so the
output is bit-exact with libgsm's (tests/test_listening_gsm.py checks it against a fixture decoded by
sox, which uses libgsm).
"""

from __future__ import annotations

from array import array
import struct
import sys

#: Samples in one GSM frame (20 ms at 8 kHz) and bytes of one wav49 block (two frames, 520 bits).
FRAME_SAMPLES = 160
WAV49_BLOCK = 65

_MIN, _MAX = -32768, 32767
_FAC = (18431, 20479, 22527, 24575, 26623, 28671, 30719, 32767)
_QLB = (3277, 11469, 21299, 32767)
#: (B, MIC, INVA) of the eight log-area-ratio decoders (06.10 table 5.2).
_LAR_TABLE = (
    (0, -32, 13107),
    (0, -32, 13107),
    (2048, -16, 13107),
    (-2560, -16, 13107),
    (94, -8, 19223),
    (-1792, -8, 17476),
    (-341, -4, 31454),
    (-1144, -4, 29708),
)
#: Bit widths of one frame's parameters in stream order: LARc[0..7], then per subframe Nc, bc, Mc,
#: xmaxc and the 13 xMc.
_LAR_BITS = (6, 6, 5, 5, 4, 4, 3, 3)
_SUB_BITS = (7, 2, 2, 6) + (3,) * 13


def _sat(x: int) -> int:
    return _MIN if x < _MIN else (_MAX if x > _MAX else x)


def _mult_r(a: int, b: int) -> int:
    if a == _MIN and b == _MIN:
        return _MAX
    return (a * b + 16384) >> 15


def _asr(a: int, n: int) -> int:
    if n >= 16:
        return -1 if a < 0 else 0
    if n <= -16:
        return 0
    if n < 0:
        return _sat(a << -n)
    return a >> n


def _asl(a: int, n: int) -> int:
    if n >= 16:
        return 0
    if n <= -16:
        return -1 if a < 0 else 0
    if n < 0:
        return _asr(a, -n)
    return _sat(a << n)


def _to_word(x: int) -> int:
    """The low 16 bits as a signed word (C's assignment of a masked int to `word`)."""
    x &= 0xFFFF
    return x - 0x10000 if x & 0x8000 else x


class GsmDecoder:
    """One decoder's state (the filters carry over from frame to frame)."""

    def __init__(self) -> None:
        self.dp0 = [0] * 160  # long-term filter history: drp[-120..39] is dp0[0..159]
        self.larpp = ([0] * 8, [0] * 8)
        self.j = 0
        self.nrp = 40
        self.v = [0] * 9
        self.msr = 0

    # -- one frame ---------------------------------------------------------------------------------

    def decode_frame(self, params: list[int], out: array) -> None:
        """Decode one frame's 76 parameters (stream order) and append its 160 samples to `out`."""
        lar_c = params[:8]
        wt = [0] * 160
        dp0 = self.dp0
        for j in range(4):
            base = 8 + j * 17
            nc, bc, mc, xmaxc = params[base], params[base + 1], params[base + 2], params[base + 3]
            xmc = params[base + 4 : base + 17]
            erp = self._rpe_decoding(xmaxc, mc, xmc)
            # long-term synthesis filtering (06.10 5.3.2)
            nr = self.nrp if nc < 40 or nc > 120 else nc
            self.nrp = nr
            brp = _QLB[bc]
            for k in range(40):
                drpp = _mult_r(brp, dp0[120 + k - nr])
                dp0[120 + k] = _sat(erp[k] + drpp)
            wt[j * 40 : j * 40 + 40] = dp0[120:160]
            dp0[0:120] = dp0[40:160]
        samples = self._short_term_synthesis(lar_c, wt)
        # postprocessing: de-emphasis, upscaling and truncation to 13 bits
        msr = self.msr
        for k in range(160):
            tmp = _mult_r(msr, 28180)
            msr = _sat(samples[k] + tmp)
            samples[k] = _to_word(_sat(msr + msr) & 0xFFF8)
        self.msr = msr
        out.extend(samples)

    @staticmethod
    def _rpe_decoding(xmaxc: int, mc: int, xmc: list[int]) -> list[int]:
        # APCM_quantization_xmaxc_to_exp_mant
        exp = 0
        if xmaxc > 15:
            exp = (xmaxc >> 3) - 1
        mant = xmaxc - (exp << 3)
        if mant == 0:
            exp, mant = -4, 7
        else:
            while mant <= 7:
                mant = mant << 1 | 1
                exp -= 1
            mant -= 8
        # APCM_inverse_quantization
        temp1 = _FAC[mant]
        temp2 = _sat(6 - exp)
        temp3 = _asl(1, _sat(temp2 - 1))
        ep = [0] * 40
        for i in range(13):
            temp = ((xmc[i] << 1) - 7) << 12
            temp = _mult_r(temp1, _to_word(temp))
            temp = _sat(temp + temp3)
            ep[mc + 3 * i] = _asr(temp, temp2)
        return ep

    def _short_term_synthesis(self, lar_c: list[int], wt: list[int]) -> list[int]:
        larpp_j = self.larpp[self.j]
        self.j ^= 1
        larpp_j_1 = self.larpp[self.j]
        for i, (b, mic, inva) in enumerate(_LAR_TABLE):
            temp1 = _to_word(_sat(lar_c[i] + mic) << 10)
            temp1 = _sat(temp1 - (b << 1))
            temp1 = _mult_r(inva, temp1)
            larpp_j[i] = _sat(temp1 + temp1)
        out = [0] * 160
        spans = ((0, 13), (13, 27), (27, 40), (40, 160))
        for which, (start, end) in enumerate(spans):
            larp = [0] * 8
            for i in range(8):
                a, b = larpp_j_1[i], larpp_j[i]
                if which == 0:
                    x = _sat((a >> 2) + (b >> 2))
                    larp[i] = _sat(x + (a >> 1))
                elif which == 1:
                    larp[i] = _sat((a >> 1) + (b >> 1))
                elif which == 2:
                    x = _sat((a >> 2) + (b >> 2))
                    larp[i] = _sat(x + (b >> 1))
                else:
                    larp[i] = b
            rp = [_lar_to_r(x) for x in larp]
            self._filter(rp, wt, out, start, end)
        return out

    def _filter(self, rrp: list[int], wt: list[int], out: list[int], start: int, end: int) -> None:
        # The hot loop (most of the decoding time): libgsm masks each product with 0xFFFF, but
        # (a * b + 16384) >> 15 of two words is always a word except for MIN * MIN, handled apart.
        v = self.v
        taps = tuple((i, rrp[i]) for i in range(7, -1, -1))
        for k in range(start, end):
            sri = wt[k]
            for i, r in taps:
                vi = v[i]
                sri -= _MAX if (r == _MIN and vi == _MIN) else (r * vi + 16384) >> 15
                if sri < _MIN:
                    sri = _MIN
                elif sri > _MAX:
                    sri = _MAX
                x = vi + (_MAX if (r == _MIN and sri == _MIN) else (r * sri + 16384) >> 15)
                v[i + 1] = _MIN if x < _MIN else (_MAX if x > _MAX else x)
            out[k] = v[0] = sri


def _lar_to_r(x: int) -> int:
    """LARp_to_rp (06.10 5.2.9.2): the log-area ratio back to a reflection coefficient."""
    if x < 0:
        temp = _MAX if x == _MIN else -x
        if temp < 11059:
            r = temp << 1
        elif temp < 20070:
            r = temp + 11059
        else:
            r = _sat((temp >> 2) + 26112)
        return -r
    if x < 11059:
        return x << 1
    if x < 20070:
        return x + 11059
    return _sat((x >> 2) + 26112)


def _wav49_params(block: bytes) -> tuple[list[int], list[int]]:
    """Both frames' parameters from one 65-byte block: a little-endian bit stream, each field LSB first."""
    bits = int.from_bytes(block, "little")
    frames: list[list[int]] = []
    pos = 0
    for _ in range(2):
        params: list[int] = []
        for width in _LAR_BITS:
            params.append((bits >> pos) & ((1 << width) - 1))
            pos += width
        for _sub in range(4):
            for width in _SUB_BITS:
                params.append((bits >> pos) & ((1 << width) - 1))
                pos += width
        frames.append(params)
    return frames[0], frames[1]


def wav49_levels(data: bytes, buckets: int) -> list[float]:
    """A level (0..1) per slice of wav49 audio from each subframe's block maximum (xmaxc), without decoding."""
    peaks: list[int] = []
    for offset in range(0, len(data) - WAV49_BLOCK + 1, WAV49_BLOCK):
        for params in _wav49_params(data[offset : offset + WAV49_BLOCK]):
            peaks.extend(params[8 + j * 17 + 3] for j in range(4))
    if not peaks:
        return []
    buckets = max(1, min(buckets, len(peaks)))
    step = len(peaks) / buckets
    return [
        round(max(peaks[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) / 63, 4) for i in range(buckets)
    ]


def iter_wav49(data: bytes, samples: int | None = None, blocks_per_chunk: int = 25):
    """Decode wav49 audio progressively: yields little-endian 16-bit PCM bytes, `blocks_per_chunk` blocks at a time."""
    decoder = GsmDecoder()
    left = samples
    for start in range(0, len(data) - WAV49_BLOCK + 1, WAV49_BLOCK * blocks_per_chunk):
        out = array("h")
        end = min(len(data) - WAV49_BLOCK + 1, start + WAV49_BLOCK * blocks_per_chunk)
        for offset in range(start, end, WAV49_BLOCK):
            first, second = _wav49_params(data[offset : offset + WAV49_BLOCK])
            decoder.decode_frame(first, out)
            decoder.decode_frame(second, out)
        if left is not None:
            if len(out) >= left:
                del out[left:]
            left -= len(out)
        if sys.byteorder != "little":  # pragma: no cover - CIM runs on little-endian hosts
            out.byteswap()
        yield out.tobytes()
        if left is not None and left <= 0:
            return


def wav_header(samples: int, rate: int = 8000) -> bytes:
    """The 44-byte header of a canonical mono 16-bit PCM WAV of `samples` samples."""
    size = samples * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )


def decode_wav49(data: bytes, samples: int | None = None) -> array:
    """16-bit samples (native order) of wav49 audio data: whole 65-byte blocks, optionally cut to `samples`."""
    decoder = GsmDecoder()
    out = array("h")
    for offset in range(0, len(data) - WAV49_BLOCK + 1, WAV49_BLOCK):
        first, second = _wav49_params(data[offset : offset + WAV49_BLOCK])
        decoder.decode_frame(first, out)
        decoder.decode_frame(second, out)
    if samples is not None and samples < len(out):
        del out[samples:]
    return out


def pcm_wav(samples: array, rate: int = 8000) -> bytes:
    """A canonical mono 16-bit PCM WAV of `samples`."""
    if sys.byteorder != "little":  # pragma: no cover - CIM runs on little-endian hosts
        samples = array("h", samples)
        samples.byteswap()
    return wav_header(len(samples), rate) + samples.tobytes()
