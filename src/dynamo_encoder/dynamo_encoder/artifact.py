"""The encoder artifact: one file with everything the encoder node needs to embed camera frames.

A torch.save'd dict of plain types and tensors (loadable with weights_only=True): format version,
name, architecture, state_dict, input size, normalisation, camera names, embedding dim per camera,
a checksum of the weights (first 16 hex digits of SHA-256; Embedding.msg carries it so policies
can refuse embeddings from a different encoder) and the training config.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .model.encoder import ARCHITECTURES, ImageEncoder, build_encoder

FORMAT_VERSION = 1
_REQUIRED_KEYS = ('format_version', 'name', 'arch', 'state_dict', 'input_size', 'mean', 'std',
                  'camera_names', 'embedding_dim', 'checksum')


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, moved into place only when complete, so an
    interrupted save never leaves a truncated artifact or checkpoint.
    """
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactError(Exception):
    """Missing, corrupt or incompatible artifact, or frames that do not fit it; names the file/camera."""


def weights_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """First 16 hex digits of SHA-256 over names, dtypes, shapes and bytes of every tensor, sorted by name."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class EncoderArtifact:
    """A frozen image encoder with its metadata; `encode`/`encode_batch` run it without gradients."""

    def __init__(self, module: ImageEncoder, camera_names: list[str], name: str,
                 training_config: dict | None = None):
        if not camera_names:
            raise ArtifactError('an encoder artifact needs at least one camera name')
        self.module = module.eval()
        self.camera_names = list(camera_names)
        self.name = name
        self.training_config = training_config or {}
        self.checksum = weights_checksum(self._cpu_state_dict())
        self.device = next(module.parameters()).device

    # -- metadata -------------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.module.arch

    @property
    def input_size(self) -> tuple[int, int]:
        return self.module.input_size

    @property
    def embedding_dim(self) -> int:
        """Dimension per camera; encode() returns len(camera_names) * embedding_dim values."""
        return self.module.embedding_dim

    @property
    def output_dim(self) -> int:
        return len(self.camera_names) * self.embedding_dim

    def _cpu_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def random_init(cls, arch: str, camera_names: list[str], input_size: tuple[int, int] | list[int],
                    seed: int) -> 'EncoderArtifact':
        """The "no pretraining" baseline: the architecture at its seeded random initialisation, which is
        exactly where `pretrain` with train.seed == seed starts from.
        """
        if arch not in ARCHITECTURES:
            raise ArtifactError(f'unknown encoder arch {arch!r}; known: {sorted(ARCHITECTURES)}')
        module = build_encoder(arch, input_size, seed=seed)
        return cls(module, camera_names, name=f'random-{arch}-seed{seed}',
                   training_config={'objective': {'name': 'random_init'}, 'seed': seed})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = 'cpu') -> 'EncoderArtifact':
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f'{path}: encoder artifact not found')
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not an artifact"
            raise ArtifactError(f'{path}: not a readable encoder artifact ({type(exc).__name__}: {exc})') from None
        if not isinstance(data, dict) or any(k not in data for k in _REQUIRED_KEYS):
            missing = [k for k in _REQUIRED_KEYS if not isinstance(data, dict) or k not in data]
            raise ArtifactError(f'{path}: not an encoder artifact (missing {missing})')
        if data['format_version'] != FORMAT_VERSION:
            raise ArtifactError(f'{path}: artifact format version {data["format_version"]}, '
                                f'this code reads version {FORMAT_VERSION}')
        if data['arch'] not in ARCHITECTURES:
            raise ArtifactError(f'{path}: unknown encoder arch {data["arch"]!r}; known: {sorted(ARCHITECTURES)}')
        checksum = weights_checksum(data['state_dict'])
        if checksum != data['checksum']:
            raise ArtifactError(f'{path}: weights checksum {checksum} does not match the recorded '
                                f'{data["checksum"]} (file corrupt or edited)')
        module = ImageEncoder(data['arch'], tuple(data['input_size']), tuple(data['mean']), tuple(data['std']))
        try:
            module.load_state_dict(data['state_dict'])
        except RuntimeError as exc:
            raise ArtifactError(f'{path}: weights do not fit arch {data["arch"]!r}: {exc}') from None
        if module.embedding_dim != data['embedding_dim']:
            raise ArtifactError(f'{path}: embedding_dim {data["embedding_dim"]} does not match arch '
                                f'{data["arch"]!r} ({module.embedding_dim})')
        artifact = cls(module.to(device), data['camera_names'], data['name'], data.get('training_config'))
        return artifact

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file in the same directory + os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            'format_version': FORMAT_VERSION,
            'name': self.name,
            'arch': self.arch,
            'state_dict': self._cpu_state_dict(),
            'input_size': list(self.input_size),
            'mean': list(self.module.mean_values),
            'std': list(self.module.std_values),
            'camera_names': list(self.camera_names),
            'embedding_dim': int(self.embedding_dim),
            'checksum': self.checksum,
            'training_config': self.training_config,
        }
        atomic_torch_save(data, path)

    # -- inference ------------------------------------------------------------------------------
    def _camera_batch(self, frames: dict, camera: str, batched: bool) -> torch.Tensor:
        if camera not in frames:
            raise ArtifactError(f'encoder {self.name!r} needs camera {camera!r}, got {sorted(frames)}')
        array = np.asarray(frames[camera])
        expected_dims = 4 if batched else 3
        if array.dtype != np.uint8 or array.ndim != expected_dims or array.shape[-1] != 3:
            layout = '(B, H, W, 3)' if batched else '(H, W, 3)'
            raise ArtifactError(f'camera {camera!r}: expected uint8 {layout} RGB, got {array.dtype} {array.shape}')
        # Dataset frames are read-only views; torch wants writable memory.
        array = np.ascontiguousarray(array) if array.flags.writeable else np.array(array, order='C')
        tensor = torch.from_numpy(array)
        return (tensor if batched else tensor.unsqueeze(0)).to(self.device)

    @torch.inference_mode()
    def encode_batch(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """{camera: uint8 (B, H, W, 3)} -> float32 (B, len(camera_names) * embedding_dim), cameras in order."""
        views = [self._camera_batch(frames, camera, batched=True) for camera in self.camera_names]
        sizes = {len(v) for v in views}
        if len(sizes) != 1:
            raise ArtifactError(f'cameras have different batch sizes: '
                                f'{dict(zip(self.camera_names, (len(v) for v in views)))}')
        out = torch.cat([self.module(v).float() for v in views], dim=1)
        return out.cpu().numpy()

    def encode(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """{camera: uint8 (H, W, 3)} -> float32 (len(camera_names) * embedding_dim,)."""
        views = {camera: self._camera_batch(images, camera, batched=False).cpu().numpy()
                 for camera in self.camera_names}
        return self.encode_batch(views)[0]
