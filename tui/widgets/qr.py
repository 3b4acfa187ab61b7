"""A QR code drawn with half-block characters (two modules per character cell), from segno's matrix."""

from __future__ import annotations

import segno
from rich.text import Text


def qr_text(data: str) -> Text:
    """`data` as a QR code: dark modules black on white, so phones read it on dark and light terminals."""
    matrix = [list(row) for row in segno.make(data, error="m").matrix_iter(border=2)]
    if len(matrix) % 2:
        matrix.append([0] * len(matrix[0]))
    lines = []
    for top, bottom in zip(matrix[0::2], matrix[1::2]):
        line = []
        for upper, lower in zip(top, bottom):
            line.append({(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}[(int(bool(upper)), int(bool(lower)))])
        lines.append("".join(line))
    return Text("\n".join(lines), style="black on white", no_wrap=True)
