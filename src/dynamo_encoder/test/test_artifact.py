"""The encoder artifact: round trip, checksum, the encode API, and clear errors."""

import copy

import numpy as np
import pytest
import torch

from dynamo_data import DatasetWriter, LeRobotDataset
from dynamo_encoder.artifact import DATASET_BATCH_SIZE, ArtifactError, EncoderArtifact, weights_checksum

torch.set_num_threads(1)


@pytest.fixture
def artifact():
    return EncoderArtifact.random_init('resnet_small', ['front', 'wrist'], (32, 32), seed=7)


def images(batch=None, size=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[0], size[1], 3) if batch is None else (batch, size[0], size[1], 3)
    return {'front': rng.integers(0, 256, shape, dtype=np.uint8), 'wrist': rng.integers(0, 256, shape, dtype=np.uint8)}


def test_save_load_round_trip_keeps_metadata_and_outputs(artifact, tmp_path):
    artifact.save(tmp_path / 'encoder.pt')
    loaded = EncoderArtifact.load(tmp_path / 'encoder.pt')
    assert (loaded.name, loaded.checksum, loaded.camera_names, loaded.input_size, loaded.embedding_dim) == \
        (artifact.name, artifact.checksum, ['front', 'wrist'], (32, 32), 128)
    np.testing.assert_array_equal(loaded.encode(images()), artifact.encode(images()))
    assert loaded.training_config['seed'] == 7
    # A plain-types-and-tensors file: loadable without unpickling arbitrary objects.
    assert torch.load(tmp_path / 'encoder.pt', weights_only=True)['format_version'] == 1


def test_encode_concatenates_cameras_in_order_and_matches_encode_batch(artifact):
    batch = images(batch=3)
    out = artifact.encode_batch(batch)
    assert out.shape == (3, 256) and out.dtype == np.float32
    single = artifact.encode({c: v[1] for c, v in batch.items()})
    np.testing.assert_allclose(single, out[1], rtol=1e-5, atol=1e-6)
    swapped = artifact.encode_batch({'front': batch['wrist'], 'wrist': batch['front']})
    np.testing.assert_allclose(swapped[:, :128], out[:, 128:], rtol=1e-5, atol=1e-6)


def test_random_init_is_seeded_and_checksum_follows_the_weights(artifact):
    again = EncoderArtifact.random_init('resnet_small', ['front', 'wrist'], (32, 32), seed=7)
    other = EncoderArtifact.random_init('resnet_small', ['front', 'wrist'], (32, 32), seed=8)
    assert again.checksum == artifact.checksum != other.checksum
    assert len(artifact.checksum) == 16 and int(artifact.checksum, 16) >= 0
    state = artifact.module.state_dict()
    state['stem.0.weight'] = state['stem.0.weight'] + 1e-3
    assert weights_checksum(state) != artifact.checksum


def test_errors_name_the_file_or_camera(artifact, tmp_path):
    with pytest.raises(ArtifactError, match='nothing.pt: encoder artifact not found'):
        EncoderArtifact.load(tmp_path / 'nothing.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    with pytest.raises(ArtifactError, match='junk.pt: not a readable encoder artifact'):
        EncoderArtifact.load(tmp_path / 'junk.pt')
    artifact.save(tmp_path / 'encoder.pt')
    data = torch.load(tmp_path / 'encoder.pt', weights_only=True)
    data['state_dict']['stem.0.weight'] += 1.0
    torch.save(data, tmp_path / 'edited.pt')
    with pytest.raises(ArtifactError, match='edited.pt: weights checksum .* does not match'):
        EncoderArtifact.load(tmp_path / 'edited.pt')
    with pytest.raises(ArtifactError, match="needs camera 'wrist'"):
        artifact.encode({'front': images()['front']})
    with pytest.raises(ArtifactError, match="camera 'front': expected uint8"):
        artifact.encode({'front': images()['front'].astype(np.float32), 'wrist': images()['wrist']})


def test_read_only_and_strided_frames_are_accepted(artifact):
    batch = images(batch=2, size=(32, 64))
    expected = artifact.encode_batch({c: np.ascontiguousarray(v[:, :, ::2]) for c, v in batch.items()})
    strided = {c: v[:, :, ::2] for c, v in batch.items()}   # a non-contiguous view, e.g. a crop or stride
    for view in strided.values():
        view.flags.writeable = False                      # dataset frames are read-only views
    np.testing.assert_array_equal(artifact.encode_batch(strided), expected)


def test_encode_dataset_embeds_every_frame_of_every_episode_in_order(artifact, tmp_path):
    rng = np.random.default_rng(0)
    lengths = [DATASET_BATCH_SIZE + 3, 2]    # one episode spans two batches
    writer = DatasetWriter(tmp_path / 'dataset', fps=10, robot_type='test',
                           cameras={'front': (24, 24, 3), 'wrist': (24, 24, 3)}, arrays={}, video=False)
    for length in lengths:
        writer.add_episode(frames={c: rng.integers(0, 256, (length, 24, 24, 3), dtype=np.uint8)
                                   for c in ('front', 'wrist')}, arrays={}, task='t')
    writer.finalize()
    dataset = LeRobotDataset(tmp_path / 'dataset')
    embeddings = artifact.encode_dataset(dataset)
    assert [e.shape for e in embeddings] == [(n, 256) for n in lengths]
    assert all(e.dtype == np.float32 for e in embeddings)
    for episode, frame in [(0, 0), (0, DATASET_BATCH_SIZE + 2), (1, 1)]:
        expected = artifact.encode({c: dataset.frames(episode, c)[frame] for c in ('front', 'wrist')})
        np.testing.assert_allclose(embeddings[episode][frame], expected, rtol=1e-4, atol=1e-5)
    three_cameras = EncoderArtifact.random_init('resnet_small', ['front', 'wrist', 'top'], (32, 32), seed=7)
    with pytest.raises(ArtifactError, match=r"needs camera\(s\) \['top'\]; dataset .* has \['front', 'wrist'\]"):
        three_cameras.encode_dataset(dataset)


@pytest.mark.parametrize('arch, input_size', [('resnet18', (96, 96)), ('resnet_small', (32, 32))])
def test_inference_runs_channels_last_with_the_embedding_of_the_contiguous_module(arch, input_size, tmp_path):
    """encode() uses the faster channels-last form; its embedding equals the plain module's within 1e-5."""
    artifact = EncoderArtifact.random_init(arch, ['front'], input_size, seed=3)
    artifact.save(tmp_path / 'encoder.pt')
    loaded = EncoderArtifact.load(tmp_path / 'encoder.pt')
    contiguous = copy.deepcopy(loaded.module).to(memory_format=torch.contiguous_format)
    convolutions = [m.weight for m in loaded.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    assert not all(w.is_contiguous() for w in convolutions)   # (1x1 kernels are both)
    frame = images(size=(120, 160), seed=4)['front']
    with torch.inference_mode():
        expected = contiguous(torch.from_numpy(frame)[None]).numpy()[0]
    np.testing.assert_allclose(loaded.encode({'front': frame}), expected, rtol=0, atol=1e-5)
    # The saved weights stay contiguous: the file does not depend on the memory format used for inference.
    saved = torch.load(tmp_path / 'encoder.pt', weights_only=True)['state_dict']
    assert all(tensor.is_contiguous() for tensor in saved.values())
    assert loaded.checksum == artifact.checksum
