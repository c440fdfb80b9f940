"""Benchmark convert_bags against its floors: a raw read + deserialise of the same bag, and PNG encoding alone.

    python bench/convert.py [--frames 2000] [--size 224] [--storage mcap] [--repeat 2] [--memory-frames 2000 8000]

Writes one bag of N 224x224 rgb8 camera-like frames at 10 Hz with /joint_states and the two xArm trajectory
topics, then measures (in this one run, warm page cache, best of --repeat):
  raw:     rosbags AnyReader iterating every message and deserialising it
  png:     PNG encoding of the bag's frames alone, on all cores (the writer's threads)
  convert: convert_bags (read, sync, decode, encode the dataset, stats, report, previews), with PNG
           images (default level 1, and level 0) and with mp4 video
and prints convert / max(raw, png) (goal <= 1.3: the conversion costs little beyond its slowest floor).
Then:
  jobs:    frames/s converting the same frames as 2 x cores bags, with --jobs 1 and --jobs <cores>
  memory:  peak RSS of convert_bags (a fresh process's VmHWM) on bags of each --memory-frames length
           (goal: the same for any length, under 1 GB)
"""
import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src/dynamo_data/test'))
import _bag_factory_conversion as bf  # noqa: E402


def camera_frames(count, size, seed=0):
    """Camera-like frames: shaded scene, a moving object and sensor noise (compress like real ones)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    scene = np.stack([90 + 60 * np.sin(xx / 37), 80 + 0.4 * yy, 120 + 40 * np.cos((xx + yy) / 53)], axis=-1)
    noise = [rng.normal(0, 3.0, scene.shape).astype(np.float32) for _ in range(7)]  # 7: no repeats
    for k in range(count):
        frame = scene + noise[k % len(noise)]
        x = int((k * 3) % (size - 40))
        frame[60:100, x:x + 40] = (200, 40, 40)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_bench_bag(path, frames, size, storage):
    msgs = bf.xarm_messages(frames, image_hw=(8, 8), shuffle_joints=False)
    images = camera_frames(frames, size)
    msgs = [(t, ty, r, bf.image(r - 2_000_000, next(images)) if t == '/camera/color/image_raw' else m)
            for t, ty, r, m in msgs]
    return bf.write_bag(path, msgs, storage)


def raw_read(bag):
    from rosbags.highlevel import AnyReader

    count = 0
    with AnyReader([Path(bag)]) as reader:
        for conn, _, data in reader.messages(connections=reader.connections):
            reader.deserialize(data, conn.msgtype)
            count += 1
    return count


def convert(bags, cfg, out, jobs=1):
    from dynamo_data.conversion.cli import main

    rc = main([str(b) for b in bags] + ['--config', str(cfg), '--output', str(out), '--overwrite', '--no-progress',
                                        '--jobs', str(jobs)])
    assert rc == 0


def peak_rss_mb(bag, cfg, out):
    """Peak RSS (MB) of convert_bags on one bag, in a fresh process.

    Read from the process's VmHWM: its resource maxrss would start at this (large) bench process's
    RSS, which Linux carries over a fork and exec.
    """
    code = ('import sys; from dynamo_data.conversion.cli import main; '
            f'rc = main([{str(bag)!r}, "--config", {str(cfg)!r}, "--output", {str(out)!r}, "--overwrite", '
            '"--no-progress"]); '
            'print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))); sys.exit(rc)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def png_encode_only(size, level, sample=200):
    """Seconds per frame of encode_png alone, frames spread over the writer's threads."""
    from concurrent.futures import ThreadPoolExecutor

    from dynamo_data import PNG_THREADS, encode_png

    frames = list(camera_frames(sample, size))
    with ThreadPoolExecutor(PNG_THREADS) as pool:
        wall, _ = best(lambda: list(pool.map(lambda frame: encode_png(frame, level), frames)), 2)
    return wall / sample


def best(fn, repeat):
    """Best wall time of `repeat` runs, and the process CPU time (all threads) of that run."""
    runs = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=2000, help='camera frames in the bag (10 Hz)')
    parser.add_argument('--size', type=int, default=224, help='frame height and width (pixels)')
    parser.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'], help='bag storage plugin')
    parser.add_argument('--repeat', type=int, default=2, help='runs of each measurement; the best counts')
    parser.add_argument('--memory-frames', type=int, nargs='*', default=[2000, 8000],
                        help='bag lengths whose peak RSS is measured (none: skip)')
    args = parser.parse_args()
    from dynamo_data import PNG_THREADS

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        bag = write_bench_bag(tmp / 'bag', args.frames, args.size, args.storage)
        size_mb = sum(p.stat().st_size for p in bag.iterdir()) / 1e6
        print(f'bag: {args.frames} frames {args.size}x{args.size} rgb8 + 3 joint topics, {args.storage}, '
              f'{size_mb:.0f} MB (written in {time.perf_counter() - t:.1f} s); {PNG_THREADS} core(s)')
        n = raw_read(bag)  # warm the page cache
        raw, raw_cpu = best(lambda: raw_read(bag), args.repeat)
        print(f'raw read + deserialise (rosbags AnyReader): {raw:.2f} s, cpu {raw_cpu:.2f} s ({n / raw:.0f} msg/s)')
        floors = {}
        for level in (1, 0):
            per_frame = png_encode_only(args.size, level)
            floors[level] = max(raw, per_frame * args.frames)
            print(f'PNG level {level} encode alone on {PNG_THREADS} thread(s): {per_frame * 1e3:.2f} ms/frame, '
                  f'{per_frame * args.frames:.2f} s for the bag; floor max(raw, png) {floors[level]:.2f} s')
        variants = (('PNG in parquet, png_compress_level 1 (default)', {'video': False}, floors[1]),
                    ('PNG in parquet, png_compress_level 0 (stored)', {'video': False, 'png_compress_level': 0},
                     floors[0]),
                    ('h264 mp4 (video: true)', {'video': True}, None))
        for i, (label, overrides, floor) in enumerate(variants):
            cfg = bf.write_config(tmp / f'cfg{i}.yaml', {**overrides, 'task': 'bench'})
            with contextlib.redirect_stdout(io.StringIO()):
                wall, cpu = best(lambda: convert([bag], cfg, tmp / f'ds{i}'), args.repeat)
            size = sum(p.stat().st_size for p in (tmp / f'ds{i}').rglob('*') if p.is_file()) / 1e6
            ratio = f', ratio to the floor {wall / floor:.2f} (goal <= 1.3)' if floor else ''
            print(f'convert_bags, {label}: {wall:.2f} s (cpu {cpu:.2f} s), {args.frames / wall:.0f} frames/s, '
                  f'ratio to raw {wall / raw:.1f}{ratio}, dataset {size:.0f} MB')

        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
        count = 2 * cores
        bags = [write_bench_bag(tmp / f'jobs{k}', args.frames // count, args.size, args.storage) for k in range(count)]
        cfg = bf.write_config(tmp / 'cfg_jobs.yaml', {'task': 'bench'})
        for jobs in sorted({1, cores}):
            with contextlib.redirect_stdout(io.StringIO()):
                wall, _ = best(lambda: convert(bags, cfg, tmp / 'ds_jobs', jobs), args.repeat)
            print(f'convert_bags --jobs {jobs}: {count} bags of {args.frames // count} frames, {wall:.2f} s, '
                  f'{count * (args.frames // count) / wall:.0f} frames/s')

        for frames in args.memory_frames:
            long_bag = write_bench_bag(tmp / f'mem{frames}', frames, args.size, args.storage)
            rss = peak_rss_mb(long_bag, tmp / 'cfg0.yaml', tmp / 'ds_mem')
            print(f'peak RSS of convert_bags on a {frames}-frame bag: {rss:.0f} MB (goal: independent of length, '
                  '< 1 GB)')
            for path in sorted(long_bag.rglob('*'), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            long_bag.rmdir()


if __name__ == '__main__':
    main()
