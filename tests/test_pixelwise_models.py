"""Pixel-wise encoder-decoders: output sizes for odd inputs, max-unpooling with the encoder's switches, options."""

from __future__ import annotations

import pytest
import torch

from caekit.errors import ConfigError
from caekit.models import create_model
from caekit.models._pixelwise import Upsample
from caekit.models.segnet import SegNetDecoder

KINDS = ("max", "fixed", "bilinear", "transposed")


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one thread beats two on 2 cores


@pytest.mark.parametrize("name", ["unet", "segnet"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [(29, 31), (33, 17)])
def test_unet_and_segnet_come_back_to_odd_input_sizes(name: str, kind: str, size: tuple[int, int]) -> None:
    model = create_model(name, input_shape=(1, *size), width=4, depth=3, upsample=kind, classes=5)
    x = torch.rand(2, 1, *size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 5, *size)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the whole network is on the gradient path


@pytest.mark.parametrize("name", ["deconvnet", "fcn"])
def test_deconvnet_and_fcn_odd_sizes(name: str) -> None:
    model = create_model(name, input_shape=(3, 27, 35), width=4, depth=3)
    assert model(torch.rand(1, 3, 27, 35)).shape == (1, 11, 27, 35)


@pytest.mark.parametrize("encoder", ["resnet18"])  # vgg builds its 100M-parameter classifier: slow to make
def test_backbone_encoders_plug_into_unet(encoder: str) -> None:
    model = create_model("unet", input_shape=(3, 35, 33), encoder=encoder, depth=2, upsample="bilinear", classes=3)
    assert model(torch.rand(1, 3, 35, 33)).shape == (1, 3, 35, 33)


def test_segnet_takes_the_encoder_from_a_cae_spec() -> None:
    model = create_model("segnet", input_shape=(1, 28, 28), spec="cae28", classes=4)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 4, 28, 28)
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, 16 * 3 * 3)


def test_max_unpooling_puts_values_where_the_maxima_were() -> None:
    x = torch.tensor(
        [
            [1.0, 2.0, 0.0, 7.0, 1.0],
            [3.0, 4.0, 6.0, 5.0, 9.0],
            [0.0, 0.0, 1.0, 0.0, 2.0],
            [8.0, 0.0, 0.0, 3.0, 0.0],
            [5.0, 5.0, 5.0, 5.0, 5.0],
        ]
    ).view(1, 1, 5, 5)
    pooled, switches = torch.nn.MaxPool2d(2, 2, return_indices=True)(x)
    assert pooled.view(-1).tolist() == [4.0, 7.0, 8.0, 3.0]
    up = Upsample("max", 1)(torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]]), (5, 5), switches)
    expected = torch.zeros(5, 5)
    expected[1, 1], expected[0, 3], expected[3, 0], expected[3, 3] = 10.0, 20.0, 30.0, 40.0  # the maxima's places
    assert torch.equal(up[0, 0], expected)


def test_segnet_decoder_unpools_with_the_matching_pools_switches() -> None:
    model = create_model("segnet", input_shape=(1, 23, 23), width=4, depth=2, batch_norm=False).eval()
    seen = {}
    decoder: SegNetDecoder = model.decoder
    for i, level in enumerate(decoder.levels):
        level.up.register_forward_hook(lambda module, args, out, i=i: seen.__setitem__(i, (args, out)))
    x = torch.rand(1, 1, 23, 23)
    encoded = model.encoder(x)
    model(x)
    for i, pool in ((0, 1), (1, 0)):  # decoder level 0 mirrors the last pool
        (values, size, switches), out = seen[i]
        assert torch.equal(switches, encoded.indices[pool]) and tuple(size) == encoded.sizes[pool]
        flat = out.flatten(2)
        nonzero = flat != 0
        placed = torch.zeros_like(nonzero)
        placed.scatter_(2, switches.flatten(2), True)
        assert not (nonzero & ~placed).any()  # nothing lands outside the switches
        assert torch.equal(flat.gather(2, switches.flatten(2)), values.flatten(2))


@pytest.mark.parametrize("name", ["segnet", "unet", "deconvnet", "fcn"])
@pytest.mark.parametrize("scale", [2, 4])
def test_superres_models_upscale_and_start_at_bicubic(name: str, scale: int) -> None:
    model = create_model(name, input_shape=(3, 32, 32), task="superres", scale=scale, width=4, depth=2).eval()
    low = torch.rand(2, 3, 32 // scale, 32 // scale)
    out = model(low)
    assert out.shape == (2, 3, 32, 32)
    bicubic = torch.nn.functional.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.allclose(out, bicubic, atol=1e-6)  # zero-initialised residual


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(ConfigError, match="switches"):
        create_model("segnet", encoder="resnet18")
    with pytest.raises(ConfigError, match="too small"):
        create_model("unet", input_shape=(1, 12, 12), depth=4)
    with pytest.raises(ConfigError, match="unknown encoder"):
        create_model("unet", encoder="alexnet")
    with pytest.raises(ConfigError, match="upsample"):
        create_model("unet", upsample="magic")
    with pytest.raises(ConfigError, match="scale"):
        create_model("unet", task="superres", scale=1)


@pytest.mark.parametrize("name", ["segnet", "unet", "deconvnet", "fcn", "dcgan", "cdcgan"])
def test_builders_that_pass_options_on_check_and_record_them(name: str) -> None:
    """A builder with ``**options`` still refuses an unknown option by name and records every default in a run."""
    from caekit.models.registry import MODELS
    from caekit.runner import model_arguments

    with pytest.raises(ConfigError, match=r"has no option 'dept'; its options are: .*width"):
        create_model(name, dept=2)
    recorded = model_arguments(name, {}, (1, 32, 32))
    assert recorded["input_shape"] == [1, 32, 32]
    assert "width" in recorded and "options" not in recorded
    assert set(recorded) == set(MODELS.parameters(name))


def test_deconvnet_keeps_its_own_default_encoder() -> None:
    assert create_model("deconvnet", input_shape=(3, 32, 32)).config["encoder"] == "vgg"
    assert create_model("segnet", input_shape=(3, 32, 32)).config["encoder"] == "cae"


def test_an_unconditional_dcgan_keeps_num_classes_to_itself() -> None:
    """dcgan passes its options on to DCGAN but fixes the conditional ones: a run on labelled data stays unconditional."""
    from caekit.runner import model_arguments

    assert "num_classes" not in model_arguments("dcgan", {}, (1, 28, 28), num_classes=10)
    assert model_arguments("cdcgan", {}, (1, 28, 28), num_classes=10)["num_classes"] == 10
    with pytest.raises(ConfigError, match="has no option 'num_classes'"):
        create_model("dcgan", num_classes=10)
