"""export_encoder --onnx and OnnxEncoder: the exported file alone encodes like the torch artifact."""

import contextlib
import io
import json

import numpy as np
import onnx
import pytest
import torch

from dynamo_encoder.artifact import ArtifactError, EncoderArtifact
from dynamo_encoder.export import main as export_main
from dynamo_encoder.onnx_encoder import METADATA_PREFIX, OnnxEncoder

torch.set_num_threads(1)
CAMERAS = ['front', 'wrist']


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Return (dir, artifact, printed) of a trained-looking artifact (BatchNorm statistics off 0/1) exported."""
    root = tmp_path_factory.mktemp('onnx')
    artifact = EncoderArtifact.random_init('resnet_small', CAMERAS, (32, 40), seed=3)
    with torch.no_grad():
        for module in artifact.module.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    artifact = EncoderArtifact(artifact.module, CAMERAS, artifact.name)   # checksum of the changed weights
    artifact.save(root / 'encoder.pt')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert export_main(['--onnx', str(root / 'encoder.onnx'), str(root / 'encoder.pt')]) == 0
    return root, EncoderArtifact.load(root / 'encoder.pt'), printed.getvalue()


def test_export_writes_a_model_that_encodes_like_the_artifact(exported):
    root, artifact, printed = exported
    assert 'max abs difference' in printed
    difference = float(printed.split('max abs difference ')[1].split()[0])
    assert difference <= 1e-4
    encoder = OnnxEncoder.load(root / 'encoder.onnx', threads=1)
    assert (encoder.name, encoder.checksum, encoder.camera_names, encoder.embedding_dim, encoder.input_size) == (
        artifact.name, artifact.checksum, artifact.camera_names, artifact.embedding_dim, artifact.input_size)
    assert encoder.output_dim == artifact.output_dim
    rng = np.random.default_rng(0)
    # A camera-sized frame (shrunk with antialiasing), one at the input size, one enlarged.
    for height, width in [(120, 160), (32, 40), (20, 30)]:
        images = {camera: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for camera in CAMERAS}
        expected = artifact.encode(images)
        got = encoder.encode(images)
        assert got.dtype == np.float32 and got.shape == expected.shape == (artifact.output_dim,)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    batch = {camera: rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8) for camera in CAMERAS}
    np.testing.assert_allclose(encoder.encode_batch(batch), artifact.encode_batch(batch), atol=1e-4, rtol=0)


def test_the_metadata_describes_the_artifact(exported):
    root, artifact, _ = exported
    model = onnx.load(root / 'encoder.onnx')
    metadata = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert metadata[METADATA_PREFIX + 'camera_names'] == CAMERAS
    assert metadata[METADATA_PREFIX + 'checksum'] == artifact.checksum
    assert metadata[METADATA_PREFIX + 'name'] == artifact.name
    assert metadata[METADATA_PREFIX + 'input_size'] == [32, 40]
    assert metadata[METADATA_PREFIX + 'embedding_dim'] == 128


def test_an_edited_or_foreign_file_is_refused(exported, tmp_path):
    root, _, _ = exported
    model = onnx.load(root / 'encoder.onnx')
    weights = next(t for t in model.graph.initializer if len(t.raw_data) > 64)
    raw = bytearray(weights.raw_data)
    raw[10] ^= 0x40
    weights.raw_data = bytes(raw)
    onnx.save(model, tmp_path / 'edited.onnx')
    with pytest.raises(ArtifactError, match='corrupt or edited'):
        OnnxEncoder.load(tmp_path / 'edited.onnx')

    del model.metadata_props[:]
    onnx.save(model, tmp_path / 'plain.onnx')
    with pytest.raises(ArtifactError, match='not an exported DynaMo encoder'):
        OnnxEncoder.load(tmp_path / 'plain.onnx')

    (tmp_path / 'text.onnx').write_text('not a model')
    with pytest.raises(ArtifactError, match='not a readable ONNX model'):
        OnnxEncoder.load(tmp_path / 'text.onnx')
    with pytest.raises(ArtifactError, match='not found'):
        OnnxEncoder.load(tmp_path / 'missing.onnx')


def test_frames_that_do_not_fit_are_refused_by_name(exported):
    root, _, _ = exported
    encoder = OnnxEncoder.load(root / 'encoder.onnx', threads=1)
    good = np.zeros((32, 40, 3), np.uint8)
    with pytest.raises(ArtifactError, match="needs camera 'wrist'"):
        encoder.encode({'front': good})
    with pytest.raises(ArtifactError, match="camera 'wrist': expected uint8"):
        encoder.encode({'front': good, 'wrist': good.astype(np.float32)})


def test_export_of_an_unreadable_artifact_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / 'encoder.pt').write_bytes(b'garbage')
    assert export_main(['--onnx', str(tmp_path / 'out.onnx'), str(tmp_path / 'encoder.pt')]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith('export_encoder: error:') and '\n' not in error
    assert not (tmp_path / 'out.onnx').exists()
