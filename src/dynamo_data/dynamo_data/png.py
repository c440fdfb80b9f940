"""PNG encoding of camera frames for "image" features: fast, lossless, on many threads at once."""
import os
import struct
import zlib

import numpy as np
from isal import isal_zlib

# zlib releases the GIL, so frames compress in parallel on threads: one per core this process may use.
PNG_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_IEND = struct.pack('>I', 0) + b'IEND' + struct.pack('>I', zlib.crc32(b'IEND'))
_IDAT_CRC = zlib.crc32(b'IDAT')


def encode_png(image, level=1):
    """Encode a uint8 (H, W, 3) image as PNG bytes (8-bit RGB, lossless).

    level 0 stores the rows uncompressed (about as fast as a copy, files as large as the pixels).
    level 1 deflates "Up"-filtered rows (each row minus the row above) with ISA-L (`isal`), whose
    level 1 is ~2.5x faster than zlib's fastest on camera frames at about the same size (224x224:
    0.45 ms / 82 kB vs zlib run-length 1.15 ms / 78 kB, zlib level 1 1.8 ms / 90 kB) and smaller
    on flat simulator renders. Levels 2-9 are zlib's LZ77 levels, worth it only for flat synthetic
    images. Both release the GIL, so frames encode in parallel on threads.
    """
    h, w, c = image.shape
    flat = image.reshape(h, w * c)
    rows = np.empty((h, 1 + w * c), dtype=np.uint8)
    if level == 0:
        rows[:, 0] = 0
        rows[:, 1:] = flat
    else:
        rows[:, 0] = 2  # Up: each row minus the row above (mod 256)
        rows[0, 1:] = flat[0]
        np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    idat = isal_zlib.compress(rows, 1) if level == 1 else zlib.compress(rows, level)
    header = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b''.join([_PNG_SIGNATURE, struct.pack('>I', len(header)), b'IHDR', header,
                     struct.pack('>I', zlib.crc32(b'IHDR' + header)),
                     struct.pack('>I', len(idat)), b'IDAT', idat, struct.pack('>I', zlib.crc32(idat, _IDAT_CRC)),
                     _PNG_IEND])
