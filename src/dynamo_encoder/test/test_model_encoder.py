"""Image encoders: preprocessing inside the module, any layout and size in, fixed-size embedding out."""

import numpy as np
import torch

from dynamo_encoder.model import build_encoder

torch.set_num_threads(1)


def test_channels_last_and_first_give_the_same_embedding():
    encoder = build_encoder('resnet_small', (32, 32), seed=0).eval()
    images = torch.randint(0, 256, (2, 40, 48, 3), dtype=torch.uint8)
    with torch.no_grad():
        hwc = encoder(images)
        chw = encoder(images.permute(0, 3, 1, 2))
        single = encoder(images[0])
    assert hwc.shape == (2, 128)
    torch.testing.assert_close(hwc, chw)
    torch.testing.assert_close(single, hwc[:1])


def test_any_image_size_is_resized_to_the_input_size():
    encoder = build_encoder('resnet_small', (32, 32), seed=0).eval()

    def smooth_image(size):  # the same smooth picture sampled at two resolutions
        u = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        y, x = torch.meshgrid(u, u, indexing='ij')
        rgb = torch.stack([x, y, 0.5 + 0.5 * torch.sin(6 * x * y)], dim=-1)
        return (rgb * 255).round().to(torch.uint8).unsqueeze(0)

    small, large = smooth_image(32), smooth_image(96)
    assert encoder.preprocess(large).shape == (1, 3, 32, 32)
    torch.testing.assert_close(encoder.preprocess(large), encoder.preprocess(small), atol=0.1, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(encoder(large), encoder(small), atol=0.05, rtol=0.05)


def test_normalisation_happens_inside_the_module():
    encoder = build_encoder('resnet_small', (16, 16), seed=0)
    grey = torch.full((1, 16, 16, 3), 255, dtype=torch.uint8)
    x = encoder.preprocess(grey)
    expected = (1.0 - torch.tensor(encoder.mean_values)) / torch.tensor(encoder.std_values)
    torch.testing.assert_close(x[0, :, 0, 0], expected)


def test_resnet18_gives_512_dims_and_seeded_init_is_reproducible():
    a = build_encoder('resnet18', (32, 32), seed=3)
    b = build_encoder('resnet18', (32, 32), seed=3)
    c = build_encoder('resnet18', (32, 32), seed=4)
    assert a.embedding_dim == 512
    assert sum(p.numel() for p in a.parameters()) == 11_176_512  # torchvision resnet18 minus its fc layer
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa['stem.0.weight'], sc['stem.0.weight'])
    with torch.no_grad():
        assert a.eval()(torch.from_numpy(np.zeros((1, 32, 32, 3), np.uint8))).shape == (1, 512)


def test_random_init_is_torchvisions_default_without_zero_init_residual():
    """The paper's random init: kaiming fan-out convs, BN weight 1 / bias 0, residual branches not zeroed."""
    from dynamo_encoder.model.encoder import BasicBlock

    encoder = build_encoder('resnet18', (32, 32), seed=0)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    stem = encoder.stem[0].weight
    fan_out = stem.shape[0] * stem.shape[2] * stem.shape[3]
    assert abs(float(stem.std()) / (2.0 / fan_out) ** 0.5 - 1.0) < 0.05
    # Each block's residual branch changes its output: a zero-initialised last BN would make
    # every block pass relu(skip path) through unchanged.
    blocks = [m for m in encoder.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    with torch.no_grad():
        for block in blocks:
            x = torch.randn(2, block.conv1.in_channels, 8, 8)
            skip = x if block.downsample is None else block.downsample(x)
            assert (block(x) - torch.relu(skip)).abs().mean() > 0.1
