"""The encoder artifact: one file with everything the encoder node needs to embed camera frames.

A torch.save'd dict of plain types and tensors (loadable with weights_only=True): format version,
name, architecture, state_dict, input size, normalisation, camera names, embedding dim per camera,
a checksum of the weights (first 16 hex digits of SHA-256; Embedding.msg carries it so policies
can refuse embeddings from a different encoder) and the training config.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynamo_data import LeRobotDataset
from dynamo_data.atomic import atomic_open

from .model.encoder import ARCHITECTURES, ImageEncoder, build_encoder

FORMAT_VERSION = 1
_REQUIRED_KEYS = ('format_version', 'name', 'arch', 'state_dict', 'input_size', 'mean', 'std',
                  'camera_names', 'embedding_dim', 'checksum')
# Frames per forward pass when embedding a whole dataset: bounded memory for resnet18 at 224 px.
DATASET_BATCH_SIZE = 64


class ArtifactError(Exception):
    """Missing, corrupt or incompatible artifact, or frames that do not fit it; names the file/camera."""


def camera_frames(frames: dict, camera: str, batched: bool, encoder_name: str) -> np.ndarray:
    """Return camera's frames as C-contiguous uint8 (B, H, W, 3); ArtifactError naming what does not fit."""
    if camera not in frames:
        raise ArtifactError(f'encoder {encoder_name!r} needs camera {camera!r}, got {sorted(frames)}')
    array = np.asarray(frames[camera])
    expected_dims = 4 if batched else 3
    if array.dtype != np.uint8 or array.ndim != expected_dims or array.shape[-1] != 3:
        layout = '(B, H, W, 3)' if batched else '(H, W, 3)'
        raise ArtifactError(f'camera {camera!r}: expected uint8 {layout} RGB, got {array.dtype} {array.shape}')
    array = np.ascontiguousarray(array)
    return array if batched else array[None]


def weights_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """First 16 hex digits of SHA-256 over names, dtypes, shapes and bytes of every tensor, sorted by name."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class EncoderArtifact:
    """A frozen image encoder with its metadata; `encode`/`encode_batch` run it without gradients.

    Takes over `module`: puts it in eval mode and, on the CPU, in channels-last memory format.
    """

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
        if self.device.type == 'cpu':
            # The frames arrive channels-last (H, W, 3), and oneDNN's convolutions are fastest on
            # channels-last weights too: resnet18 at 224 px on one thread took 70 instead of 114 ms
            # (same numbers within 1e-5, test_artifact). Left alone on CUDA, where it was not measured.
            self.module.to(memory_format=torch.channels_last)

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
        # Contiguous, so a saved artifact does not depend on the memory format inference uses.
        return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                for k, v in self.module.state_dict().items()}

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def random_init(cls, arch: str, camera_names: list[str], input_size: tuple[int, int] | list[int],
                    seed: int) -> 'EncoderArtifact':
        """Build the "no pretraining" baseline: the architecture at its seeded random initialisation.

        That is exactly where `pretrain` with train.seed == seed starts from.
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
            reason = str(exc).partition('\n')[0]
            raise ArtifactError(f'{path}: not a readable encoder artifact ({type(exc).__name__}: {reason})') from None
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
            reason = ' '.join(str(exc).split())
            raise ArtifactError(f'{path}: weights do not fit arch {data["arch"]!r}: {reason}') from None
        if module.embedding_dim != data['embedding_dim']:
            raise ArtifactError(f'{path}: embedding_dim {data["embedding_dim"]} does not match arch '
                                f'{data["arch"]!r} ({module.embedding_dim})')
        artifact = cls(module.to(device), data['camera_names'], data['name'], data.get('training_config'))
        return artifact

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (dynamo_data.atomic): an interrupted save never leaves a truncated artifact."""
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
        with atomic_open(path, 'wb') as file:
            torch.save(data, file)

    # -- inference ------------------------------------------------------------------------------
    def _camera_batch(self, frames: dict, camera: str, batched: bool) -> torch.Tensor:
        array = camera_frames(frames, camera, batched, self.name)
        # Dataset frames are read-only views; torch wants writable memory.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
        return tensor.to(self.device)

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

    def encode_dataset(self, dataset: LeRobotDataset, progress: bool = False) -> list[np.ndarray]:
        """Embed every frame of the dataset: float32 (T, output_dim) per episode, episodes in order."""
        missing = [camera for camera in self.camera_names if camera not in dataset.camera_names]
        if missing:
            raise ArtifactError(f'encoder {self.name!r} needs camera(s) {missing}; dataset {dataset.root} has '
                                f'{dataset.camera_names}; use an encoder trained with the dataset cameras')
        embeddings = []
        with tqdm(total=int(dataset.episode_lengths.sum()), desc='encoding frames', unit='frame',
                  disable=not progress) as bar:
            for episode in range(dataset.num_episodes):
                frames = {camera: dataset.frames(episode, camera) for camera in self.camera_names}
                rows = []
                for start in range(0, len(frames[self.camera_names[0]]), DATASET_BATCH_SIZE):
                    rows.append(self.encode_batch({camera: f[start:start + DATASET_BATCH_SIZE]
                                                   for camera, f in frames.items()}))
                    bar.update(len(rows[-1]))
                embeddings.append(np.concatenate(rows))
        return embeddings
