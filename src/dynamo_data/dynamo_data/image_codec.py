"""Decode ROS image messages into numpy arrays without cv_bridge (ROS-free).

Used by the bag converter (rosbags message objects) and the encoder node (rclpy messages), so both
see exactly the same pixels. `data` may be bytes, bytearray, memoryview, array.array or a uint8
numpy array.
"""
import io

import numpy as np

__all__ = ['ImageDecodeError', 'decode_image', 'decode_compressed_image', 'SUPPORTED_ENCODINGS']


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels; the message says why."""


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


def _as_bytes_buffer(data):
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if hasattr(data, 'tobytes') and not isinstance(data, (bytes, bytearray, memoryview)):
        data = data.tobytes()  # array.array from rclpy
    return np.frombuffer(data, dtype=np.uint8)


def decode_image(encoding, height, width, step, is_bigendian, data):
    """Decode a sensor_msgs/Image into a numpy array.

    rgb8/bgr8/rgba8/bgra8 -> uint8 (H, W, 3) RGB; mono8 -> uint8 (H, W, 1);
    mono16/16UC1 -> uint16 (H, W, 1); 32FC1 -> float32 (H, W, 1).
    Row padding (`step` > width * pixel size) is skipped; `is_bigendian` is honoured.
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


def decode_compressed_image(format, data):  # noqa: A002 - the ROS field is called `format`
    """Decode a sensor_msgs/CompressedImage (jpeg or png) into uint8 (H, W, 3) RGB."""
    from PIL import Image, UnidentifiedImageError

    fmt = str(format).lower()
    if 'jpeg' not in fmt and 'jpg' not in fmt and 'png' not in fmt:
        raise ImageDecodeError(f'unsupported compressed image format {format!r}; supported: jpeg, png')
    buf = _as_bytes_buffer(data)
    if buf.size == 0:
        raise ImageDecodeError(f'empty compressed image data (format {format!r})')
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as img:
            return np.asarray(img.convert('RGB'))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageDecodeError(f'cannot decode compressed image (format {format!r}): {exc}') from exc
