"""Encoder latency: onnxruntime (export_encoder --onnx) vs torch eager, one frame set, in one run.

  python bench/onnx_encoder.py [--arch resnet18] [--size 224] [--frame 224 224] [--threads 1] [--repeats 30]

Both run the whole encode path of the encoder node (uint8 (H, W, 3) frame in, embedding out):
EncoderArtifact.encode (torch, as the node loads it: channels-last on the CPU) and OnnxEncoder.encode
on the exported file. Prints the median latency of each and their ratio, measured alternately in
one run so the machine's load affects both alike. The issue measured 109 ms (torch) vs 67 ms
(onnxruntime) for resnet18 at 224 px on one thread, before the artifact went channels-last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dynamo_encoder.artifact import EncoderArtifact
from dynamo_encoder.export import export_onnx
from dynamo_encoder.onnx_encoder import OnnxEncoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='resnet18')
    parser.add_argument('--size', type=int, default=224, help='encoder input size (square)')
    parser.add_argument('--frame', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='camera frame size (default: the input size, so no resize)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=30, help='timed encodes per backend (after 3 warm-up)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frame_size = tuple(args.frame or (args.size, args.size))
    with tempfile.TemporaryDirectory() as tmp:
        artifact = EncoderArtifact.random_init(args.arch, ['front'], (args.size, args.size), seed=0)
        artifact.save(Path(tmp) / 'encoder.pt')
        print(f'exporting {args.arch} at {args.size} px ...', flush=True)
        difference = export_onnx(Path(tmp) / 'encoder.pt', Path(tmp) / 'encoder.onnx')
        artifact = EncoderArtifact.load(Path(tmp) / 'encoder.pt')
        exported = OnnxEncoder.load(Path(tmp) / 'encoder.onnx', threads=args.threads)
    images = {'front': np.random.default_rng(0).integers(0, 256, (*frame_size, 3), dtype=np.uint8)}
    backends = {'torch eager': artifact.encode, 'onnxruntime': exported.encode}
    times = {name: [] for name in backends}
    for repeat in range(3 + args.repeats):
        for name, encode in backends.items():
            start = time.perf_counter()
            encode(images)
            if repeat >= 3:
                times[name].append(time.perf_counter() - start)
    print(f'{args.arch} at {args.size} px, frame {frame_size[0]}x{frame_size[1]}, {args.threads} thread(s), '
          f'torch {torch.__version__}, parity {difference:.1e}, median of {args.repeats}')
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    for name, ms in medians.items():
        print(f'  {name:<12} {ms:8.1f} ms')
    print(f'  torch / onnxruntime: {medians["torch eager"] / medians["onnxruntime"]:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
