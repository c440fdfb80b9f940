"""Statistics of a dataset: per episode (meta/episodes `stats/<feature>/<stat>` columns) and in total (meta/stats.json).

Computed and aggregated the way LeRobot's writer and dataset tools do (lerobot 0.4-0.6), so its
delete/split/merge/append tools and its quantile normalisation work on our datasets:

- every feature gets min, max, mean, std, count and the quantiles q01, q10, q50, q90, q99;
- arrays and the index features: over all frames of the episode, per element (shape (D,), (1,) for
  scalars; count = frames);
- cameras: per channel, shape (3, 1, 1), values in 0..1, over LeRobot's frame sample of the episode
  (`stats_frame_indices`: all frames up to 100, then length**0.75, at most 10,000), each frame
  subsampled as LeRobot does from 300 px a side; count = sampled frames. Computed from a 256-bin
  histogram per channel, so exact for uint8 pixels;
- quantiles: numpy's linear interpolation between order statistics (LeRobot estimates them from a
  5000-bin histogram of the same values: equal within a bin width);
- meta/stats.json aggregates the episodes: min of the minima, max of the maxima, count-weighted mean,
  the pooled variance, and count-weighted means of the quantiles (LeRobot's releases up to 0.6.1).
"""
import numpy as np

QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}
STATS_COLUMN_PREFIX = 'stats/'
# LeRobot's frame sample per episode: all frames up to this many, then length**0.75 up to the maximum.
_MIN_SAMPLED_FRAMES = 100
_MAX_SAMPLED_FRAMES = 10_000
# LeRobot's pixel subsample: frames this large (either side) are strided to about _TARGET_SIDE.
_DOWNSAMPLE_FROM_SIDE = 300
_TARGET_SIDE = 150


def stats_frame_indices(length):
    """Return the frame indices of an episode of `length` frames that image statistics sample (as LeRobot)."""
    count = max(min(_MIN_SAMPLED_FRAMES, length), min(int(length**0.75), _MAX_SAMPLED_FRAMES))
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def _stats_pixels(frame):
    """Return the strided view of an (H, W, 3) frame that stands for it in the statistics (as LeRobot)."""
    height, width = frame.shape[:2]
    if max(height, width) < _DOWNSAMPLE_FROM_SIDE:
        return frame
    step = int(width / _TARGET_SIDE) if width > height else int(height / _TARGET_SIDE)
    return frame[::step, ::step]


class ImageStats:
    """Per-channel statistics of one camera over one episode, fed frame by frame (only sampled frames count)."""

    def __init__(self, length):
        self._sampled = set(stats_frame_indices(length).tolist())
        self._histogram = np.zeros((3, 256), dtype=np.int64)
        self._frames = 0

    def add(self, index, frame):
        """Count frame `index` (uint8 (H, W, 3)) if it is in the episode's sample."""
        if index not in self._sampled:
            return
        pixels = _stats_pixels(frame)
        for channel in range(3):
            self._histogram[channel] += np.bincount(pixels[..., channel].ravel(), minlength=256)
        self._frames += 1

    def result(self):
        """Return {stat: array}, shapes (3, 1, 1) in 0..1 and count (1,)."""
        values = np.arange(256, dtype=np.float64)
        total = self._histogram.sum(axis=1)
        mean = self._histogram @ values / total
        variance = self._histogram @ values**2 / total - mean**2
        cumulative = np.cumsum(self._histogram, axis=1)
        stats = {'min': np.argmax(self._histogram > 0, axis=1).astype(np.float64),
                 'max': 255.0 - np.argmax(self._histogram[:, ::-1] > 0, axis=1),
                 'mean': mean, 'std': np.sqrt(np.maximum(variance, 0.0))}
        for key, q in QUANTILES.items():
            position = q * (total - 1)  # numpy's linear method on the sorted pixels, per channel
            below, frac = np.floor(position), position - np.floor(position)
            lo = np.array([np.searchsorted(c, k, side='right') for c, k in zip(cumulative, below)])
            hi = np.array([np.searchsorted(c, k, side='right') for c, k in zip(cumulative, np.ceil(position))])
            stats[key] = lo + frac * (hi - lo)
        stats = {k: (v / 255.0).reshape(3, 1, 1) for k, v in stats.items()}
        stats['count'] = np.array([self._frames], dtype=np.int64)
        return stats


def array_stats(values):
    """Return LeRobot's per-episode statistics of one array or index feature: values (T, D) or (T,)."""
    values = np.asarray(values)
    flat = values.reshape(len(values), -1)
    stats = {'min': flat.min(axis=0), 'max': flat.max(axis=0), 'mean': flat.mean(axis=0, dtype=np.float64),
             'std': flat.std(axis=0, dtype=np.float64), 'count': np.array([len(values)], dtype=np.int64)}
    quantiles = np.quantile(flat.astype(np.float64), list(QUANTILES.values()), axis=0)
    stats.update(zip(QUANTILES, quantiles))
    return stats


def aggregate_stats(stats_list):
    """Return the statistics of the union of episodes, from their statistics, as LeRobot aggregates them.

    stats_list: [{feature: {stat: array}}]; features missing from some entries aggregate the others.
    """
    features = list(dict.fromkeys(key for stats in stats_list for key in stats))
    return {key: _aggregate_feature([stats[key] for stats in stats_list if key in stats]) for key in features}


def _aggregate_feature(entries):
    means = np.stack([np.asarray(e['mean'], dtype=np.float64) for e in entries])
    variances = np.stack([np.asarray(e['std'], dtype=np.float64) ** 2 for e in entries])
    counts = np.stack([np.asarray(e['count']).reshape(1) for e in entries]).astype(np.float64)
    total = counts.sum(axis=0)
    weights = counts.reshape(-1, *[1] * (means.ndim - 1))
    mean = (means * weights).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
    aggregated = {'min': np.min(np.stack([np.asarray(e['min']) for e in entries]), axis=0),
                  'max': np.max(np.stack([np.asarray(e['max']) for e in entries]), axis=0),
                  'mean': mean, 'std': np.sqrt(variance), 'count': total.astype(np.int64)}
    for key in QUANTILES:
        if all(key in e for e in entries):
            quantiles = np.stack([np.asarray(e[key], dtype=np.float64) for e in entries])
            aggregated[key] = (quantiles * weights).sum(axis=0) / total
    return aggregated


def stats_to_json(stats):
    """Return {feature: {stat: nested lists}} for meta/stats.json."""
    return {key: {name: np.asarray(value).tolist() for name, value in entry.items()} for key, entry in stats.items()}


def stats_columns(stats):
    """Return the meta/episodes columns {`stats/<feature>/<stat>`: nested lists} of one episode's statistics."""
    return {f'{STATS_COLUMN_PREFIX}{key}/{name}': np.asarray(value).tolist()
            for key, entry in stats.items() for name, value in entry.items()}


def stats_from_columns(row):
    """Return {feature: {stat: array}} from the `stats/...` entries of one meta/episodes row (pylist values)."""
    stats = {}
    for column, value in row.items():
        if column.startswith(STATS_COLUMN_PREFIX) and value is not None:
            key, _, name = column[len(STATS_COLUMN_PREFIX):].rpartition('/')
            stats.setdefault(key, {})[name] = np.asarray(value)
    return stats
