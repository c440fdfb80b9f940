"""H.264 mp4 files of "video" camera features, written and decoded with PyAV.

PyAV is imported only when a video is actually written or read: image-only datasets never need it.
"""
from fractions import Fraction

import numpy as np

from .layout import DatasetError

_VIDEO_CODEC = 'libx264'  # the encoder
VIDEO_CODEC_NAME = 'h264'  # the format it writes, as meta/info.json names it
_VIDEO_OPTIONS = {'crf': '18', 'preset': 'veryfast', 'g': '2'}


def pixel_format(height, width):
    """Return the pixel format a camera of this size is stored in (4:2:0 needs even sides)."""
    return 'yuv420p' if height % 2 == 0 and width % 2 == 0 else 'yuv444p'


class VideoFile:
    """One mp4 of one camera being written: frame i of the file has pts i (time base 1/fps)."""

    def __init__(self, path, fps, height, width):
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), mode='w')
        self.pix_fmt = pixel_format(height, width)
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(_VIDEO_CODEC, rate=rate, options=dict(_VIDEO_OPTIONS))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt
        self.stream.time_base = 1 / rate
        self.frames = 0
        self.bytes = 0

    def add(self, image):
        """Append one uint8 (H, W, 3) frame."""
        import av

        frame = av.VideoFrame.from_ndarray(image, format='rgb24')
        frame.pts = self.frames
        self.frames += 1
        for packet in self.stream.encode(frame):
            self.bytes += packet.size
            self.container.mux(packet)

    def close(self):
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def decode_video(path, shape, fps, start, count):
    """Decode frames start..start+count-1 of one mp4 into uint8 (count, *shape); frame i is at time i / fps.

    Seeks to the key frame before `start`, so the cost is that of the frames asked for (plus at most a
    group of pictures), not of the whole file.
    """
    import av

    if not path.is_file():
        raise DatasetError(f'{path}: video file missing')
    out = np.empty((count, *shape), dtype=np.uint8)
    filled = np.zeros(count, dtype=bool)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            time_base = stream.time_base
            container.seek(int(start / fps / time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                idx = int(round(float(frame.pts * time_base) * fps)) - start
                if idx >= count:
                    break
                if idx < 0:
                    continue
                image = frame.to_ndarray(format='rgb24')
                if image.shape != shape:
                    raise DatasetError(f'{path}: frame {start + idx} is {image.shape}, expected {shape}')
                out[idx] = image
                filled[idx] = True
    except av.FFmpegError as exc:
        raise DatasetError(f'{path}: cannot decode video: {exc}') from exc
    if not filled.all():
        missing = int(np.flatnonzero(~filled)[0]) + start
        raise DatasetError(f'{path}: has no frame {missing} (frames {start}..{start + count - 1} needed)')
    return out
