"""decode_image / decode_compressed_image against hand-built ROS image buffers."""
import array
import io

import numpy as np
import pytest
from PIL import Image

from dynamo_data.image_codec import ImageDecodeError, decode_compressed_image, decode_image


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _padded(rows_bytes, step):
    h, row = rows_bytes.shape
    out = np.zeros((h, step), dtype=np.uint8)
    out[:, :row] = rows_bytes
    return out.tobytes()


@pytest.mark.parametrize('encoding,order,channels', [
    ('rgb8', [0, 1, 2], 3), ('bgr8', [2, 1, 0], 3), ('rgba8', [0, 1, 2, None], 4), ('bgra8', [2, 1, 0, None], 4)])
def test_color_encodings_give_rgb_with_step_padding(encoding, order, channels):
    rgb = _rgb()
    wire = np.zeros((5, 7, channels), dtype=np.uint8)
    for dst, src in enumerate(order):
        wire[:, :, dst] = 200 if src is None else rgb[:, :, src]
    step = 7 * channels + 3  # drivers pad rows
    out = decode_image(encoding, 5, 7, step, 0, _padded(wire.reshape(5, -1), step))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


def test_mono8_and_inputs_as_array_and_ndarray():
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for data in (mono.tobytes(), array.array('B', mono.tobytes()), mono.reshape(-1)):
        out = decode_image('mono8', 3, 4, 4, False, data)
        assert out.shape == (3, 4, 1) and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:, :, 0], mono)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('bigendian', [0, 1])
def test_16bit_honours_endianness_and_padding(encoding, bigendian):
    depth = np.array([[1, 258, 65535], [4096, 0, 300]], dtype=np.uint16)
    wire = depth.astype('>u2' if bigendian else '<u2').view(np.uint8).reshape(2, -1)
    out = decode_image(encoding, 2, 3, 8, bigendian, _padded(wire, 8))
    assert out.dtype == np.uint16 and out.shape == (2, 3, 1)
    np.testing.assert_array_equal(out[:, :, 0], depth)


def test_32fc1_big_endian():
    depth = np.array([[0.5, -1.25], [3.0e3, np.inf]], dtype=np.float32)
    out = decode_image('32FC1', 2, 2, 8, 1, depth.astype('>f4').tobytes())
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :, 0], depth)


@pytest.mark.parametrize('args,match', [
    (('yuv422', 2, 2, 4, 0, b'\0' * 8), "unsupported image encoding 'yuv422'"),
    (('rgb8', 2, 2, 6, 0, b'\0' * 11), 'size mismatch'),
    (('rgb8', 2, 2, 6, 0, b''), 'empty image data'),
    (('rgb8', 2, 2, 5, 0, b'\0' * 12), 'step 5 is smaller'),
    (('rgb8', 0, 2, 6, 0, b'\0'), 'empty image'),
])
def test_bad_images_raise_clear_errors(args, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image(*args)


@pytest.mark.parametrize('fmt', ['png', 'rgb8; png compressed bgr8'])
def test_compressed_png_is_lossless(fmt):
    rgb = _rgb(6, 9, seed=3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format='PNG')
    np.testing.assert_array_equal(decode_compressed_image(fmt, buf.getvalue()), rgb)


def test_compressed_jpeg_close_and_grayscale_becomes_rgb():
    rgb = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format='JPEG', quality=95)
    out = decode_compressed_image('jpeg', np.frombuffer(buf.getvalue(), np.uint8))
    assert out.shape == (16, 16, 3) and np.abs(out.astype(int) - rgb).max() <= 4
    buf = io.BytesIO()
    Image.fromarray(rgb[:, :, 0]).save(buf, format='PNG')
    assert decode_compressed_image('png', buf.getvalue()).shape == (16, 16, 3)


def test_compressed_errors():
    with pytest.raises(ImageDecodeError, match="unsupported compressed image format 'tiff'"):
        decode_compressed_image('tiff', b'abc')
    with pytest.raises(ImageDecodeError, match='empty compressed'):
        decode_compressed_image('jpeg', b'')
    with pytest.raises(ImageDecodeError, match='cannot decode compressed image'):
        decode_compressed_image('jpeg', b'not a jpeg at all')
