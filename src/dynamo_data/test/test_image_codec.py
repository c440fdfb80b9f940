"""decode_image / decode_compressed_image against hand-built ROS image buffers."""
import array
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynamo_data.image_codec import (
    ImageDecodeError,
    ImageTooLargeError,
    compressed_codec,
    decode_compressed_image,
    decode_image,
)

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the bombs live beside the tests
from _image_bombs import gif_declaring, jpeg_declaring, png_declaring  # noqa: E402


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
    with pytest.raises(ImageDecodeError, match="the data is not a jpeg image \\(format 'jpeg'\\)"):
        decode_compressed_image('jpeg', b'not a jpeg at all')


def _encoded(fmt, rgb=None, **save_args):
    buf = io.BytesIO()
    Image.fromarray(_rgb(6, 9) if rgb is None else rgb).save(buf, format=fmt, **save_args)
    return buf.getvalue()


@pytest.mark.parametrize('fmt, codec', [
    ('jpeg', 'jpeg'), ('JPG', 'jpeg'), ('png', 'png'), ('rgb8; jpeg compressed bgr8', 'jpeg'),
    ('bgr8; png compressed bgr8', 'png'), ('mono8; png compressed ', 'png')])
def test_the_format_field_names_the_codec(fmt, codec):
    assert compressed_codec(fmt) == codec


@pytest.mark.parametrize('fmt', ['', 'gif', 'bmp', 'tiff', 'jpeg png', '16UC1; compressedDepth png', 'rvl'])
def test_formats_that_name_no_single_supported_codec_are_refused(fmt):
    with pytest.raises(ImageDecodeError, match='unsupported compressed image format'):
        compressed_codec(fmt)


@pytest.mark.parametrize('fmt, payload', [('jpeg', 'PNG'), ('jpeg', 'GIF'), ('jpeg', 'BMP'), ('png', 'JPEG'),
                                          ('rgb8; png compressed bgr8', 'GIF')])
def test_data_in_another_codec_than_the_format_names_is_refused(fmt, payload):
    """A "jpeg" carrying BMP or GIF is not decoded: only the decoder the field names runs."""
    with pytest.raises(ImageDecodeError, match=rf'the data is not a {compressed_codec(fmt)} image'):
        decode_compressed_image(fmt, _encoded(payload))


@pytest.mark.parametrize('fmt, bomb', [
    ('png', png_declaring(15000, 15000)),
    ('jpeg', jpeg_declaring(60000, 60000)),
    ('png', png_declaring(10000, 10000)),    # 100 Mpx: below Pillow's own refusal, still far above the limit
], ids=['png-225Mpx', 'jpeg-3600Mpx', 'png-100Mpx'])
def test_a_header_declaring_more_than_max_pixels_is_refused_before_decoding(fmt, bomb):
    # The data behind each header is an 8x8 image: had decoding started, it would fail as truncated
    # (a plain ImageDecodeError), so ImageTooLargeError shows the header alone decided.
    with pytest.raises(ImageTooLargeError, match=r'(png|jpeg) image declares \d+\.\d Mpx.*, more than the 2\.1 Mpx '
                                                 r'allowed; refused before decoding'):
        decode_compressed_image(fmt, bomb, max_pixels=1920 * 1080)


def test_without_a_limit_pillows_own_bomb_refusal_is_an_image_decode_error():
    for fmt, bomb in (('png', png_declaring(15000, 15000)), ('jpeg', jpeg_declaring(60000, 60000))):
        with pytest.raises(ImageTooLargeError, match=r"more than Pillow's decompression-bomb limit .*refused"):
            decode_compressed_image(fmt, bomb)
    with pytest.raises(ImageDecodeError, match='unsupported compressed image format'):
        decode_compressed_image('gif', gif_declaring(65535, 65535))
    with pytest.raises(ImageDecodeError, match='the data is not a jpeg image'):
        decode_compressed_image('jpeg', gif_declaring(65535, 65535))


def test_max_pixels_is_inclusive_and_applies_to_raw_images_too():
    rgb = _rgb(6, 9)
    np.testing.assert_array_equal(decode_compressed_image('png', _encoded('PNG', rgb), max_pixels=54), rgb)
    with pytest.raises(ImageTooLargeError, match='png image declares 9x6'):
        decode_compressed_image('png', _encoded('PNG', rgb), max_pixels=53)
    np.testing.assert_array_equal(decode_image('rgb8', 6, 9, 27, 0, rgb.tobytes(), max_pixels=54), rgb)
    # Refused from height and width alone: the data is not even looked at.
    with pytest.raises(ImageTooLargeError, match='rgb8 image declares 15000x15000'):
        decode_image('rgb8', 15000, 15000, 45000, 0, b'', max_pixels=1920 * 1080)


def test_sixteen_bit_png_is_refused_rather_than_clipped():
    depth = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
    with pytest.raises(ImageDecodeError, match='16-bit or float'):
        decode_compressed_image('16UC1; png compressed', _encoded('PNG', depth))


def test_garbage_after_a_valid_header_is_an_image_decode_error():
    data = bytearray(_encoded('PNG', _rgb(32, 32)))
    data[60:] = bytes(len(data) - 60)   # keep the header, zero the compressed pixels
    with pytest.raises(ImageDecodeError, match='cannot decode compressed image as png'):
        decode_compressed_image('png', bytes(data))
