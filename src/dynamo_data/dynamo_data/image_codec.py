"""Decode ROS image messages into numpy arrays without cv_bridge (ROS-free).

Used by the bag converter (rosbags message objects) and the encoder node (rclpy messages), so both
see exactly the same pixels. `data` may be bytes, bytearray, memoryview, array.array or a uint8
numpy array.

Images come from the network or from bags, so nothing here trusts a header: the declared size is
checked against `max_pixels` before any pixel is decoded (a 27 kB PNG can declare 15000x15000), a
compressed image is decoded only as the format its `format` field names (a "jpeg" that holds a
GIF is refused), and every failure of the image library becomes an ImageDecodeError.
"""
import io
import re
import warnings

import numpy as np

__all__ = ['ImageDecodeError', 'ImageTooLargeError', 'decode_image', 'decode_compressed_image',
           'compressed_codec', 'SUPPORTED_ENCODINGS', 'SUPPORTED_COMPRESSED_FORMATS']


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels; the message says why."""


class ImageTooLargeError(ImageDecodeError):
    """An image whose declared size exceeds the caller's `max_pixels`; refused before decoding."""


# encoding -> (numpy dtype of one channel, channels, channel order to produce RGB or None)
_ENCODINGS = {
    'rgb8': (np.uint8, 3, None),
    'bgr8': (np.uint8, 3, (2, 1, 0)),
    'rgba8': (np.uint8, 4, (0, 1, 2)),
    'bgra8': (np.uint8, 4, (2, 1, 0)),
    'mono8': (np.uint8, 1, None),
    '8uc1': (np.uint8, 1, None),
    'mono16': (np.uint16, 1, None),
    '16uc1': (np.uint16, 1, None),
    '32fc1': (np.float32, 1, None),
}
SUPPORTED_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', 'mono16', '16UC1', '32FC1')
# The codec named in a CompressedImage `format` field -> the Pillow format that decodes it.
_COMPRESSED_CODECS = {'jpeg': 'JPEG', 'jpg': 'JPEG', 'png': 'PNG'}
SUPPORTED_COMPRESSED_FORMATS = ('jpeg', 'png')


def _as_bytes_buffer(data):
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if hasattr(data, 'tobytes') and not isinstance(data, (bytes, bytearray, memoryview)):
        data = data.tobytes()  # array.array from rclpy
    return np.frombuffer(data, dtype=np.uint8)


def _check_size(width, height, max_pixels, what):
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f'{what} declares {width}x{height} = {width * height / 1e6:.1f} Mpx, more than the '
                                 f'{max_pixels / 1e6:.1f} Mpx allowed; refused before decoding')


def decode_image(encoding, height, width, step, is_bigendian, data, *, max_pixels=None):
    """Decode a sensor_msgs/Image into a numpy array.

    rgb8/bgr8/rgba8/bgra8 -> uint8 (H, W, 3) RGB; mono8 -> uint8 (H, W, 1);
    mono16/16UC1 -> uint16 (H, W, 1); 32FC1 -> float32 (H, W, 1).
    Row padding (`step` > width * pixel size) is skipped; `is_bigendian` is honoured.
    An image of more than `max_pixels` pixels (None: no limit) raises ImageTooLargeError.
    """
    spec = _ENCODINGS.get(str(encoding).lower())
    if spec is None:
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    dtype, channels, order = spec
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image: height={height}, width={width}')
    _check_size(width, height, max_pixels, f'{encoding} image')
    buf = _as_bytes_buffer(data)
    if buf.size == 0:
        raise ImageDecodeError(f'empty image data ({encoding} {width}x{height})')
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f'image step {step} is smaller than width*pixel size {row_bytes} ({encoding} {width}x{height})'
        )
    if buf.size < step * (height - 1) + row_bytes:
        raise ImageDecodeError(
            f'image data size mismatch: {buf.size} bytes for {encoding} {width}x{height} with step {step} '
            f'(need {step * height})'
        )
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    wire = np.dtype(dtype).newbyteorder('>' if is_bigendian else '<') if itemsize > 1 else np.dtype(dtype)
    pixels = np.ascontiguousarray(rows).view(wire).reshape(height, width, channels)
    if itemsize > 1:
        pixels = pixels.astype(np.dtype(dtype).newbyteorder('='), copy=False)
    if order is not None:
        pixels = pixels[:, :, order]
    return np.ascontiguousarray(pixels)


def compressed_codec(format):  # noqa: A002 - the ROS field is called `format`
    """Return the codec ('jpeg' or 'png') a CompressedImage `format` field names.

    Accepts what image_transport publishers write: a bare codec ("jpeg", "jpg", "png") or
    compressed_image_transport's "<encoding>; <codec> compressed [<encoding>]", e.g.
    "rgb8; jpeg compressed bgr8". compressedDepth ("16UC1; compressedDepth png") prefixes the PNG
    with its own header and holds depth, not colour: refused like any other codec.
    """
    words = str(format).lower().replace(';', ' ').split()
    codecs = {_COMPRESSED_CODECS[word] for word in words if word in _COMPRESSED_CODECS}
    if len(codecs) != 1 or 'compresseddepth' in words:
        raise ImageDecodeError(f'unsupported compressed image format {format!r}; supported: '
                               f"{', '.join(SUPPORTED_COMPRESSED_FORMATS)} (e.g. 'jpeg', 'rgb8; jpeg compressed bgr8')")
    return 'jpeg' if codecs == {'JPEG'} else 'png'


def decode_compressed_image(format, data, *, max_pixels=None):  # noqa: A002 - the ROS field is called `format`
    """Decode a sensor_msgs/CompressedImage (jpeg or png, as `format` names it) into uint8 (H, W, 3) RGB.

    The data must be in the codec the format field names (compressed_codec). An image declaring
    more than `max_pixels` pixels (None: no limit but Pillow's own decompression-bomb limit) raises
    ImageTooLargeError before its pixels are decoded; anything else that cannot be decoded raises
    ImageDecodeError.
    """
    from PIL import Image, UnidentifiedImageError

    codec = compressed_codec(format)
    buf = _as_bytes_buffer(data)
    if buf.size == 0:
        raise ImageDecodeError(f'empty compressed image data (format {format!r})')
    try:
        # Pillow warns (and above twice its limit raises) about decompression bombs while reading
        # the header; as errors both end up as ImageTooLargeError below instead of a stderr line.
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            # open() reads only the header; formats= keeps Pillow from trying any other decoder.
            with Image.open(io.BytesIO(buf.tobytes()), formats=[_COMPRESSED_CODECS[codec]]) as img:
                width, height = img.size
                _check_size(width, height, max_pixels, f'{codec} image')
                if img.mode in ('I', 'I;16', 'I;16B', 'F'):
                    raise ImageDecodeError(f'{codec} image of mode {img.mode} (16-bit or float, e.g. depth): '
                                           'only 8-bit colour or grey images are decoded')
                return np.asarray(img.convert('RGB'))
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r'\((\d+) pixels\)', str(exc))   # Pillow: "Image size (N pixels) exceeds ..."
        size = f'{int(declared[1]) / 1e6:.1f} Mpx' if declared else 'a size'
        limit = (f'the {max_pixels / 1e6:.1f} Mpx allowed' if max_pixels is not None
                 else f"Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS / 1e6:.1f} Mpx)")
        raise ImageTooLargeError(f'{codec} image declares {size}, more than {limit}; refused before decoding') from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f'the data is not a {codec} image (format {format!r}): only the codec the format '
                               'names is decoded') from None
    except Exception as exc:  # Pillow raises many types on hostile data; none may escape as a non-decode error
        raise ImageDecodeError(f'cannot decode compressed image as {codec} (format {format!r}): '
                               f'{type(exc).__name__}: {exc}') from None
