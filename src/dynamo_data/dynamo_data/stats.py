"""Per-feature statistics of meta/stats.json, accumulated episode by episode."""
import numpy as np

# Image statistics use at most this many frames per episode (as LeRobot samples frames for stats).
STATS_FRAMES_PER_EPISODE = 100
_STATS_PIXELS_PER_SIDE = 64


class RunningStats:
    """Per-feature min/max/mean/std/count, mergeable with stats.json of an existing dataset."""

    def __init__(self, count=0, total=None, total_sq=None, minimum=None, maximum=None):
        self.count = count
        self.total = total
        self.total_sq = total_sq
        self.minimum = minimum
        self.maximum = maximum

    @classmethod
    def from_json(cls, entry):
        mean = np.asarray(entry['mean'], dtype=np.float64)
        std = np.asarray(entry['std'], dtype=np.float64)
        count = int(np.asarray(entry['count']).reshape(-1)[0])
        return cls(count, mean * count, (std**2 + mean**2) * count,
                   np.asarray(entry['min'], dtype=np.float64), np.asarray(entry['max'], dtype=np.float64))

    def update(self, samples, axis):
        """Add `samples`, an array whose `axis` dims are reduced; the remaining dims form the stat shape."""
        samples = np.asarray(samples, dtype=np.float64)
        n = int(np.prod([samples.shape[a] for a in axis]))
        self.merge(n, samples.sum(axis=axis), (samples**2).sum(axis=axis),
                   samples.min(axis=axis), samples.max(axis=axis))

    def update_images(self, images):
        """Add uint8 (n, H, W, 3) frames as per-channel stats of shape (3, 1, 1) in [0, 1], as LeRobot.

        Like LeRobot, a strided subsample of each frame (about 64 px a side) stands for the frame.
        """
        stride = max(1, min(images.shape[1:3]) // _STATS_PIXELS_PER_SIDE)
        pixels = np.ascontiguousarray(images[:, ::stride, ::stride]).reshape(-1, images.shape[-1])
        squares = np.einsum('ij,ij->j', pixels, pixels, dtype=np.float64)
        shape = (-1, 1, 1)
        self.merge(len(images),
                   pixels.sum(axis=0, dtype=np.float64).reshape(shape) / 255 / pixels.shape[0] * len(images),
                   squares.reshape(shape) / 255**2 / pixels.shape[0] * len(images),
                   pixels.min(axis=0).reshape(shape) / 255.0, pixels.max(axis=0).reshape(shape) / 255.0)

    def merge(self, n, total, total_sq, lo, hi):
        if self.count == 0:
            self.total, self.total_sq, self.minimum, self.maximum = total, total_sq, lo, hi
        else:
            self.total = self.total + total
            self.total_sq = self.total_sq + total_sq
            self.minimum = np.minimum(self.minimum, lo)
            self.maximum = np.maximum(self.maximum, hi)
        self.count += n

    def to_json(self):
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.total_sq / self.count - mean**2, 0.0))
        return {'min': np.asarray(self.minimum).tolist(), 'max': np.asarray(self.maximum).tolist(),
                'mean': mean.tolist(), 'std': std.tolist(), 'count': [self.count]}
