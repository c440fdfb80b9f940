"""`export_encoder`: write an encoder artifact as an ONNX model that onnxruntime runs.

  export_encoder --onnx OUT.onnx ENCODER.pt

The ONNX graph is the artifact's whole encode path (uint8 (B, H, W, 3) RGB frames of any batch
size and frame size in, float32 (B, embedding_dim) embeddings out; resize and normalisation inside)
with the artifact's metadata in its metadata_props (see dynamo_encoder.onnx_encoder). Before
anything is written, the exported model is run by onnxruntime on frames at, above and below the
input size and compared with the artifact run by torch: the largest absolute difference is printed
and must be at most PARITY_TOLERANCE. The file is written atomically.

Exit status (one line on stderr names the problem): 0 when written; 2 on bad command-line usage;
1 when the artifact cannot be read, the export or the parity check fails, or OUT cannot be written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dynamo_data.atomic import atomic_open

from .artifact import ArtifactError, EncoderArtifact
from .model.encoder import ImageEncoder
from .onnx_encoder import INPUT_NAME, METADATA_PREFIX, ONNX_FORMAT_VERSION, OUTPUT_NAME, OnnxEncoder, graph_sha256

PARITY_TOLERANCE = 1e-4
PARITY_FRAMES = 2   # frames per checked frame size


class ExportGraph(nn.Module):
    """The encode path in a form torch.export can trace with symbolic frame sizes.

    ImageEncoder.preprocess skips the resize of frames already at the input size and antialiases
    only when shrinking: both are branches on the frame size, which a graph for any size cannot
    take. Here every frame is resized with antialiasing, which is the same: antialiasing only acts
    when shrinking, and a resize to the same size is the identity (the parity check covers all three).
    """

    def __init__(self, encoder: ImageEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=self.encoder.input_size, mode='bilinear', align_corners=False, antialias=True)
        return self.encoder.embed_normalised((x - self.encoder.mean) / self.encoder.std)


@contextlib.contextmanager
def _quiet_exporter():
    # The exporter logs optional torchvision ops it skips and warns about its own internals:
    # nothing the user can act on.
    logger = logging.getLogger('torch.onnx')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


def onnx_model(artifact: EncoderArtifact):
    """Return the artifact's encode path as an onnx.ModelProto with its metadata (onnxscript needed)."""
    height, width = artifact.input_size
    # Batch 2: torch.export specialises a dimension of size 1.
    example = torch.zeros(2, height, width, 3, dtype=torch.uint8, device=artifact.device)
    dims = {0: torch.export.Dim('batch'), 1: torch.export.Dim('height', min=1),
            2: torch.export.Dim('width', min=1)}
    with _quiet_exporter():
        program = torch.onnx.export(ExportGraph(artifact.module).eval(), (example,), dynamo=True, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=(dims,),
                                    external_data=False)
    model = program.model_proto
    values = {'format_version': ONNX_FORMAT_VERSION, 'name': artifact.name, 'arch': artifact.arch,
              'checksum': artifact.checksum, 'camera_names': list(artifact.camera_names),
              'input_size': list(artifact.input_size), 'embedding_dim': int(artifact.embedding_dim),
              'graph_sha256': graph_sha256(model)}
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
    return model


def parity_frame_sizes(input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Return frame sizes that exercise every path of the resize: the input size, shrinking, enlarging."""
    height, width = input_size
    return [(height, width), (2 * height + 3, 3 * width // 2 + 1), (max(height // 2, 8), max(width * 2 // 3, 8))]


def max_parity_difference(artifact: EncoderArtifact, exported: OnnxEncoder, seed: int = 0) -> float:
    """Return the largest |torch - onnxruntime| embedding difference over random frames of parity_frame_sizes."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for height, width in parity_frame_sizes(artifact.input_size):
        frames = {camera: rng.integers(0, 256, (PARITY_FRAMES, height, width, 3), dtype=np.uint8)
                  for camera in artifact.camera_names}
        difference = np.abs(exported.encode_batch(frames) - artifact.encode_batch(frames)).max()
        worst = max(worst, float(difference))
    return worst


def export_onnx(artifact_path: str | Path, onnx_path: str | Path) -> float:
    """Export, check parity, write atomically; return the largest difference (ArtifactError when above tolerance)."""
    artifact = EncoderArtifact.load(artifact_path)
    serialised = onnx_model(artifact).SerializeToString()
    exported = OnnxEncoder(serialised, str(onnx_path), threads=torch.get_num_threads())
    difference = max_parity_difference(artifact, exported)
    if not difference <= PARITY_TOLERANCE:
        raise ArtifactError(f'{onnx_path}: not written: onnxruntime and torch embeddings differ by up to '
                            f'{difference:.2e} (tolerance {PARITY_TOLERANCE:.0e})')
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(onnx_path, 'wb') as file:
        file.write(serialised)
    return difference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='export_encoder', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('encoder', help='encoder artifact (encoder.pt written by pretrain)')
    parser.add_argument('--onnx', required=True, metavar='OUT.onnx', help='where to write the ONNX model')
    args = parser.parse_args(argv)
    try:
        print(f'export_encoder: exporting {args.encoder} (torch.onnx, then a parity check with onnxruntime)',
              flush=True)
        difference = export_onnx(args.encoder, args.onnx)
    except ImportError as exc:
        print(f'export_encoder: error: {exc.name or exc} is needed for the ONNX export; install it '
              f'(see the package.xml of dynamo_encoder)', file=sys.stderr)
        return 1
    except ArtifactError as exc:
        print(f'export_encoder: error: {exc}', file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:   # unwritable OUT, an operator the exporter cannot translate
        reason = str(exc).strip().partition('\n')[0]
        print(f'export_encoder: failed: {type(exc).__name__}: {reason}', file=sys.stderr)
        return 1
    print(f'export_encoder: parity: max abs difference {difference:.2e} between onnxruntime and torch '
          f'(tolerance {PARITY_TOLERANCE:.0e}; frames at, above and below the input size)')
    print(f'export_encoder: written {args.onnx}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
