"""An exported encoder run by onnxruntime: the encoder node's `backend: onnxruntime`.

`export_encoder --onnx` (dynamo_encoder.export) writes the encoder artifact's encode path as one ONNX
graph: uint8 (B, H, W, 3) RGB frames of any size in, float32 (B, embedding_dim) out, with the resize
and normalisation inside. The artifact's metadata travels in the model's metadata_props (keys in
METADATA_KEYS), so the .onnx file alone is enough: OnnxEncoder reads it and encodes like
EncoderArtifact (same embeddings within 1e-4, same checksum in Embedding messages, so policies
accept either). The file's graph is verified against the SHA-256 recorded at export: a corrupt or
edited file is refused, as a corrupt artifact is.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .artifact import ArtifactError, camera_frames

ONNX_FORMAT_VERSION = 1
INPUT_NAME = 'images'
OUTPUT_NAME = 'embedding'
METADATA_PREFIX = 'dynamo.'
# Metadata values are strings: the JSON encoding of each value.
METADATA_KEYS = ('format_version', 'name', 'arch', 'checksum', 'camera_names', 'input_size', 'embedding_dim',
                 'graph_sha256')
PROVIDERS = {'cpu': 'CPUExecutionProvider'}


def graph_sha256(model) -> str:
    """Return the SHA-256 of an onnx.ModelProto's graph (weights included), metadata left out."""
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


class OnnxEncoder:
    """An exported encoder (.onnx) with the metadata and `encode`/`encode_batch` of EncoderArtifact."""

    def __init__(self, model_bytes: bytes, where: str, threads: int = 0, device: str = 'cpu'):
        """Verify and load a serialised ONNX model; `where` names it in errors, threads 0 = onnxruntime's default."""
        import onnx
        import onnxruntime

        if device not in PROVIDERS:
            raise ArtifactError(f'{where}: onnxruntime backend runs on {sorted(PROVIDERS)}, not {device!r}')
        try:
            model = onnx.load_from_string(model_bytes)
        except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX model"
            raise ArtifactError(f'{where}: not a readable ONNX model ({type(exc).__name__})') from None
        metadata = {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props
                    if p.key.startswith(METADATA_PREFIX)}
        missing = [key for key in METADATA_KEYS if key not in metadata]
        if missing:
            raise ArtifactError(f'{where}: not an exported DynaMo encoder (metadata missing {missing}); '
                                f'export one with export_encoder --onnx')
        try:
            values = {key: json.loads(metadata[key]) for key in METADATA_KEYS}
        except json.JSONDecodeError:
            raise ArtifactError(f'{where}: unreadable DynaMo metadata') from None
        if values['format_version'] != ONNX_FORMAT_VERSION:
            raise ArtifactError(f'{where}: exported encoder format version {values["format_version"]}, '
                                f'this code reads version {ONNX_FORMAT_VERSION}')
        digest = graph_sha256(model)
        if digest != values['graph_sha256']:
            raise ArtifactError(f'{where}: graph SHA-256 {digest[:16]}... does not match the recorded '
                                f'{values["graph_sha256"][:16]}... (file corrupt or edited)')
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # One graph, run op after op: parallelism lives inside the convolutions.
        options.inter_op_num_threads = 1
        options.log_severity_level = 3   # errors only: the optimiser's notes are not the user's business
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=[PROVIDERS[device]])
        self.device = device
        self.name = values['name']
        self.arch = values['arch']
        self.checksum = values['checksum']
        self.camera_names = list(values['camera_names'])
        self.input_size = tuple(values['input_size'])
        self.embedding_dim = int(values['embedding_dim'])

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int = 0, device: str = 'cpu') -> 'OnnxEncoder':
        """Load an exported encoder file (written by export_encoder --onnx)."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f'{path}: exported encoder not found')
        return cls(path.read_bytes(), str(path), threads=threads, device=device)

    @property
    def output_dim(self) -> int:
        return len(self.camera_names) * self.embedding_dim

    def encode_batch(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """{camera: uint8 (B, H, W, 3)} -> float32 (B, len(camera_names) * embedding_dim), cameras in order."""
        views = [camera_frames(frames, camera, True, self.name) for camera in self.camera_names]
        if len({len(v) for v in views}) != 1:
            raise ArtifactError(f'cameras have different batch sizes: '
                                f'{dict(zip(self.camera_names, (len(v) for v in views)))}')
        outputs = [self.session.run([OUTPUT_NAME], {INPUT_NAME: view})[0] for view in views]
        return np.concatenate(outputs, axis=1).astype(np.float32, copy=False)

    def encode(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """{camera: uint8 (H, W, 3)} -> float32 (len(camera_names) * embedding_dim,)."""
        views = {camera: camera_frames(images, camera, False, self.name) for camera in self.camera_names}
        return self.encode_batch(views)[0]
