"""The model zoo: shipped weights load by name and tag, are checked against their sha256, and score what they say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from caekit.data import load_dataset
from caekit.errors import CheckpointError, ConfigError
from caekit.inference import reconstruct
from caekit.metrics import psnr
from caekit.models import create_model
from caekit.models import pretrained as zoo
from conftest import run_cli


def _first_test_images(mnist_root: Path) -> torch.Tensor:
    test = load_dataset("mnist", "test", root=mnist_root)
    assert test is not None
    return test.subset(list(range(1000))).unit_images()


def test_every_entry_builds_with_its_weights() -> None:
    cfgs = zoo.pretrained_cfgs()
    assert {cfg.name for cfg in cfgs} >= {"cae28.mnist", "cae.mnist-denoise", "cae32.cifar10", "vae.mnist", "dcgan.mnist"}
    for cfg in cfgs:
        model = create_model(cfg.model, pretrained=cfg.tag)
        assert not model.training
        if cfg.objective == "gan":  # a generator: noise in, images out
            assert model.sample(2).shape == (2, *cfg.input_shape)
        else:
            out = model(torch.rand(2, *cfg.input_shape))
            assert (out[0] if isinstance(out, tuple) else out).shape[0] == 2
        assert (zoo.ZOO / cfg.file).stat().st_size < 2_000_000  # a few hundred KB, shipped in the wheel


def test_the_mnist_cae_reconstructs_at_the_psnr_its_entry_states(mnist_root: Path) -> None:
    cfg = zoo.pretrained_cfg("cae28", "mnist")
    images = _first_test_images(mnist_root)
    measured = psnr(reconstruct(create_model("cae28", pretrained="mnist"), images), images).mean().item()
    assert abs(measured - cfg.value) < 0.1, (measured, cfg.value)
    scratch = psnr(reconstruct(create_model("cae28").eval(), images), images).mean().item()
    assert measured > scratch + 5  # the weights are trained ones, not an initialisation


def test_the_denoiser_denoises_at_the_psnr_its_entry_states(mnist_root: Path) -> None:
    cfg = zoo.pretrained_cfg("cae", "mnist-denoise")
    images = _first_test_images(mnist_root)
    noisy = (images + torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * 0.3).clamp(0, 1)
    measured = psnr(reconstruct(create_model("cae", pretrained="mnist-denoise"), noisy), images).mean().item()
    assert abs(measured - cfg.value) < 0.1, (measured, cfg.value)
    assert measured > psnr(noisy, images).mean().item() + 5


def test_the_cifar_cae_reconstructs_at_the_psnr_its_entry_states(cifar_sample: Path) -> None:
    cfg = zoo.pretrained_cfg("cae32", "cifar10")
    assert "sample's 1,000 test images" in cfg.test
    images = load_dataset("cifar10", "test", root=cifar_sample).unit_images()
    measured = psnr(reconstruct(create_model("cae32", pretrained="cifar10"), images), images).mean().item()
    assert abs(measured - cfg.value) < 0.1, (measured, cfg.value)


def test_the_vae_scores_the_nll_its_entry_states(mnist_root: Path) -> None:
    from caekit.evaluate.generative import elbo_and_nll

    cfg = zoo.pretrained_cfg("vae", "mnist")
    test = load_dataset("mnist", "test", root=mnist_root)
    assert test is not None
    measured = elbo_and_nll(
        create_model("vae", pretrained="mnist"), test.subset(list(range(1000))), k=100, binarisation="dynamic"
    )
    assert abs(measured["nll"] - cfg.value) < 0.1, (measured, cfg.value)


def test_the_dcgan_generator_draws_digits(mnist_root: Path) -> None:
    """The generator's samples look like MNIST on average, where an untrained generator's do not (the Fréchet
    distance of the entry needs a judge trained for it: scripts/make_zoo.py measures it)."""
    test = load_dataset("mnist", "test", root=mnist_root)
    assert test is not None
    mean_digit = test.subset(list(range(1000))).unit_images().mean(0)
    trained = create_model("dcgan", pretrained="mnist").sample(500, generator=torch.Generator().manual_seed(0))
    untrained = create_model("dcgan", latent_dim=64, width=32, extra_layers=1, input_shape=(1, 28, 28)).eval()
    scratch = untrained.sample(500, generator=torch.Generator().manual_seed(0))
    assert trained.shape == (500, 1, 28, 28) and trained.min() >= 0 and trained.max() <= 1
    error = (trained.mean(0) - mean_digit).pow(2).mean().item()
    assert error < 0.1 * (scratch.mean(0) - mean_digit).pow(2).mean().item(), error


def test_a_tampered_weights_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "zoo"
    shutil.copytree(zoo.ZOO, copy)
    cfg = zoo.pretrained_cfg("cae28", "mnist")
    data = bytearray((copy / cfg.file).read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (copy / cfg.file).write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "ZOO", copy)
    with pytest.raises(CheckpointError, match=r"weights of cae28\.mnist .* do not match their sha256"):
        create_model("cae28", pretrained="mnist")


def test_wrong_tags_and_arguments_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"model 'cae28' has no pretrained weights 'imagenet'; choose one of: mnist"):
        create_model("cae28", pretrained="imagenet")
    with pytest.raises(ConfigError, match=r"model 'lenet5' has no pretrained weights; these do: .*cae28"):
        create_model("lenet5", pretrained=True)
    with pytest.raises(ConfigError, match=r"cae28\.mnist was trained with input_shape 1x28x28; it cannot take 3x32x32"):
        create_model("cae28", pretrained="mnist", input_shape=(3, 32, 32))
    assert type(create_model("cae28", pretrained=True)).__name__ == "ConvAutoencoder"


def test_training_starts_from_the_zoo_and_the_listing_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["models", "--pretrained"], capsys)
    assert code == 0, err
    assert any(line.startswith("cae28.mnist") and "test PSNR (dB)" in line for line in out.splitlines())
    args = ["train", "-m", "cae28", "--pretrained", "mnist", "-d", "digits", "--image-size", "28", "-e", "1"]
    code, out, err = run_cli([*args, "--runs-dir", str(tmp_path), "--name", "ft", "--no-progress"], capsys)
    assert code == 0, err
    assert "start  the model zoo's cae28.mnist weights" in out
    code, _, err = run_cli(["train", "-m", "cae28", "--pretrained", "mnist", "-d", "digits", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "cae28.mnist was trained with input_shape 1x28x28; it cannot take 1x8x8" in err


def test_a_spec_built_entry_trains_on_from_its_own_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "-m", "cae", "--pretrained", "mnist-denoise", "-d", "digits", "--image-size", "28", "-e", "1"]
    code, out, err = run_cli([*args, "--runs-dir", str(tmp_path), "--name", "dn", "--no-progress"], capsys)
    assert code == 0, err
    assert "start  the model zoo's cae.mnist-denoise weights" in out and "19,297 parameters" in out
