"""Benchmark reading one episode from a small and from a large dataset: the cost should not depend on the size.

    python bench/dataset_read.py [--small-frames 1000] [--large-frames 100000] [--episode-frames 100] [--size 64]

Builds two image datasets with DatasetWriter (episodes of --episode-frames frames of --size x --size
camera-like frames, state and action arrays), then, in a fresh process per measurement, opens each
dataset and reads one episode from its middle (frames and arrays), and prints the time to open, the
time to read the episode and the process's peak RSS (resource maxrss). Goal: reading time and peak
RSS the same for both sizes.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import camera_frames  # noqa: E402

_READ_ONE_EPISODE = """
import resource, sys, time
import PIL.Image  # imported before the clock starts: the read, not the import, is measured
from dynamo_data import LeRobotDataset
t = time.perf_counter()
ds = LeRobotDataset(sys.argv[1])
opened = time.perf_counter() - t
episode = ds.num_episodes // 2
t = time.perf_counter()
frames = ds.frames(episode, 'front')
state = ds.array(episode, 'observation.state')
read = time.perf_counter() - t
assert len(frames) == len(state) == ds.episode_lengths[episode]
print(opened, read, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def build(root, frames, episode_frames, size):
    from dynamo_data import DatasetWriter

    writer = DatasetWriter(root, fps=10, robot_type='bench', cameras={'front': (size, size, 3)},
                           arrays={'observation.state': [f'j{i}' for i in range(8)],
                                   'action': [f'j{i}' for i in range(8)]})
    images = np.stack(list(camera_frames(episode_frames, size)))
    rng = np.random.default_rng(0)
    for _ in range(frames // episode_frames):
        writer.add_episode(frames={'front': images}, arrays={
            'observation.state': rng.normal(size=(episode_frames, 8)), 'action': rng.normal(size=(episode_frames, 8))},
            task='bench')
    return writer.finalize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--small-frames', type=int, default=1000, help='frames of the small dataset')
    parser.add_argument('--large-frames', type=int, default=100_000, help='frames of the large dataset')
    parser.add_argument('--episode-frames', type=int, default=100, help='frames per episode')
    parser.add_argument('--size', type=int, default=64, help='frame height and width (pixels)')
    parser.add_argument('--repeat', type=int, default=3, help='fresh-process reads per dataset; the best counts')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (args.small_frames, args.large_frames):
            t = time.perf_counter()
            root = build(Path(tmp) / f'ds{frames}', frames, args.episode_frames, args.size)
            built = time.perf_counter() - t
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, '-c', _READ_ONE_EPISODE, str(root)], capture_output=True,
                                     text=True, check=True).stdout.split()
                runs.append((float(out[1]), float(out[0]), int(out[2]) / 1024))
            read, opened, rss = min(runs)
            print(f'{frames} frames ({frames // args.episode_frames} episodes of {args.episode_frames}, '
                  f'{args.size}x{args.size}; built in {built:.1f} s): open {opened * 1e3:.0f} ms, read one episode '
                  f'{read * 1e3:.1f} ms, peak RSS {rss:.0f} MB')


if __name__ == '__main__':
    main()
