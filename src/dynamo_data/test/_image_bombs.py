"""Decompression bombs: small compressed images whose headers declare huge sizes (tests, bench/soak.py).

Each is a valid tiny image whose size fields were rewritten: a decoder that trusts the header
allocates width x height pixels before it notices the data is short. A reader must refuse them
from the header alone, so only the header has to be hostile.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _tiny(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8), (90, 160, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """Return a PNG whose IHDR declares width x height (CRC fixed, so the header itself is valid)."""
    data = bytearray(_tiny('PNG'))
    # 8-byte signature, then the IHDR chunk: length (4), type (4), width (4), height (4), ..., CRC.
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """Return a baseline JPEG whose SOF0 segment declares width x height (at most 65535 each)."""
    data = bytearray(_tiny('JPEG'))
    sof = data.index(b'\xff\xc0')
    # FFC0, segment length (2), sample precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """Return a GIF whose logical screen and first image descriptor declare width x height (at most 65535 each)."""
    data = bytearray(_tiny('GIF'))
    data[6:10] = struct.pack('<HH', width, height)
    # After the 13-byte header and screen descriptor: the global colour table, then extension
    # blocks (0x21, label, data sub-blocks up to a zero length), then the image descriptor (0x2C).
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[position] == 0x21:
        position += 2
        while data[position]:
            position += data[position] + 1
        position += 1
    assert data[position] == 0x2C, 'no image descriptor where the GIF layout puts it'
    # 0x2C, left (2), top (2), width (2), height (2)
    data[position + 5:position + 9] = struct.pack('<HH', width, height)
    return bytes(data)
