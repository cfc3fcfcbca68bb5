"""Classifiers on encoders (frozen vs fine-tuned), the classic baselines and the backbone autoencoder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from caekit.config import OptimConfig, TrainConfig
from caekit.data.datasets import load_dataset
from caekit.errors import CheckpointError, ConfigError
from caekit.models import create_model
from caekit.models.baselines import BASELINES
from caekit.models.encoder_classifier import EncoderClassifier
from caekit.training.engine import Engine
from caekit.training.objectives import build_objective

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 48, 48)]


@pytest.fixture(scope="module")
def digits16():
    data = load_dataset("digits", "train", image_size=16)
    return data.subset(torch.arange(256))


def _train(model, data, objective="classify", epochs=1, **objective_args):
    engine = Engine(
        model,
        build_objective(objective, **objective_args),
        TrainConfig(epochs=epochs, batch_size=32, progress=False, device="cpu"),
        OptimConfig(lr=1e-2, weight_decay=0),
    )
    history = engine.fit(data)
    return engine, history


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_forward_and_backward_on_each_input_size(name: str, shape: tuple[int, int, int]) -> None:
    model = create_model(name, num_classes=7, input_shape=shape)
    x = torch.rand(2, *shape, requires_grad=False)
    logits = model.train()(x)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    first = next(p for p in model.parameters() if p.dim() == 4)
    assert first.shape[1] == shape[0] and first.grad is not None and first.grad.abs().sum() > 0


def test_baseline_loads_local_safetensors_and_skips_what_does_not_fit(tmp_path: Path) -> None:
    source = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    path = tmp_path / "lenet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    same = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28), weights=str(path)).eval()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(same(x), source.eval()(x))
    with pytest.warns(UserWarning, match="not taken"):
        other = create_model("lenet5", num_classes=5, input_shape=(1, 28, 28), weights=str(path))
    torch.testing.assert_close(other.features[0].weight, source.features[0].weight)
    with pytest.raises(CheckpointError):
        create_model("lenet5", weights=str(tmp_path / "missing.pt"))


def test_linear_probe_leaves_the_encoder_untouched(digits16) -> None:
    # an encoder with batch norm, to check that its running statistics stay frozen as well
    model = EncoderClassifier(
        create_model("backbone_ae", backbone="resnet18", input_shape=(1, 16, 16), depth=1), 10, (1, 16, 16), mode="linear"
    )
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head[-1].weight.clone()
    _engine, history = _train(model, digits16, epochs=2)
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)  # weights and BN running stats bit-identical
    assert not torch.equal(head_before, model.head[-1].weight.detach().cpu())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert model.train().encoder.training is False


def test_mlp_head_is_frozen_encoder_plus_two_layers() -> None:
    model = create_model("encoder_classifier", autoencoder="cae28", num_classes=4, mode="mlp", hidden=32, input_shape=(1, 28, 28))
    assert model.code_size == 144 and list(model.parameter_groups()) == ["head"]
    assert [type(m).__name__ for m in model.head] == ["BatchNorm1d", "Linear", "ReLU", "Dropout", "Linear"]
    assert "decoder" not in " ".join(model.state_dict())  # the unused decoder is dropped


def test_code_norm_makes_the_head_blind_to_the_scale_of_the_codes() -> None:
    """A reconstruction-trained code can sit 100x off a fresh one's scale; the head must see nearly the same thing."""
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    change = {}
    for code_norm in (True, False):
        model = create_model(
            "encoder_classifier", autoencoder="cae28", num_classes=10, mode="linear", code_norm=code_norm, input_shape=(1, 28, 28)
        ).train()
        before = model(x)
        last_conv = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():  # ReLU and max-pool commute with a positive scale: the codes become 50x larger
            last_conv.weight.mul_(50)
            last_conv.bias.mul_(50)
        change[code_norm] = ((model(x) - before).norm() / before.norm()).item()
    # not exactly 0: batch norm's eps matters for units that are almost constant over the batch
    assert change[True] < 0.2 and change[False] > 10


def test_finetune_trains_the_encoder_with_its_own_learning_rate(digits16) -> None:
    model = create_model("encoder_classifier", autoencoder="cae28", num_classes=10, mode="finetune", input_shape=(1, 16, 16))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    engine, history = _train(model, digits16, epochs=2, encoder_lr=1e-4)
    groups = engine.optimizers["model"].param_groups
    assert [g["lr"] for g in groups] == [1e-2, 1e-4]  # head first, then the encoder
    assert sum(p.numel() for p in groups[1]["params"]) == sum(p.numel() for p in model.encoder.parameters())
    changed = [k for k, v in model.encoder.state_dict().items() if not torch.equal(before[k], v.cpu())]
    assert len(changed) == len(before)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_l2_sp_pulls_the_encoder_towards_its_start_instead_of_zero(digits16) -> None:
    """With a strong pull the encoder stays near where it started; plain weight decay (the same strength) shrinks it."""

    def train(**objective_args):
        torch.manual_seed(0)
        model = create_model("encoder_classifier", autoencoder="cae28", num_classes=10, mode="finetune", input_shape=(1, 16, 16))
        start = [p.detach().clone() for p in model.encoder.parameters()]
        engine = Engine(
            model,
            build_objective("classify", **objective_args),
            TrainConfig(epochs=2, batch_size=32, progress=False, device="cpu"),
            OptimConfig(lr=1e-2, weight_decay=5.0),
        )
        history = engine.fit(digits16)
        drift = sum((p.detach() - s).pow(2).sum() for p, s in zip(model.encoder.parameters(), start)).sqrt().item()
        return engine, history, drift

    engine, history, drift_sp = train(l2_sp=5.0)
    head, encoder = engine.optimizers["model"].param_groups
    assert (head["weight_decay"], encoder["weight_decay"]) == (5.0, 0.0)  # the head keeps the run's weight decay
    assert "train_l2_sp_drift" in history[-1]
    _, _, drift_wd = train()
    assert drift_sp < 0.5 * drift_wd
    with pytest.raises(ConfigError, match="no encoder"):
        Engine(
            create_model("lenet5", num_classes=10, input_shape=(1, 16, 16)),
            build_objective("classify", l2_sp=1.0),
            TrainConfig(epochs=1, progress=False, device="cpu"),
            OptimConfig(),
        )


def test_equal_validation_accuracy_is_decided_by_the_validation_loss() -> None:
    from caekit.runner import best_epoch as _best_epoch

    history = [
        {"epoch": 1, "val_accuracy": 0.95, "val_loss": 0.30},
        {"epoch": 2, "val_accuracy": 0.94, "val_loss": 0.20},
        {"epoch": 3, "val_accuracy": 0.95, "val_loss": 0.25},
        {"epoch": 4, "val_accuracy": 0.95, "val_loss": 0.27},
    ]
    assert _best_epoch(history, build_objective("classify")) == 3
    assert _best_epoch(history, build_objective("classify", monitor="loss")) == 2


def test_classifier_from_a_trained_run_starts_from_its_weights(tmp_path: Path) -> None:
    from caekit.api import load, train

    result = train(
        {
            "runs_dir": str(tmp_path),
            "name": "ae",
            "model": {"name": "cae28"},
            "data": {"name": "digits", "image_size": 16, "limit": 200},
            "train": {"epochs": 1, "batch_size": 50, "progress": False},
        }
    )
    ae, _ = load(result.run.path)
    clf = create_model("encoder_classifier", pretrained=str(result.run.path), num_classes=10, mode="finetune")
    for key, value in ae.encoder.state_dict().items():
        torch.testing.assert_close(clf.encoder.encoder.state_dict()[key], value)
    with pytest.raises(ConfigError, match="takes 1x16x16"):
        create_model("encoder_classifier", pretrained=str(result.run.path), input_shape=(1, 28, 28))
    with pytest.raises(CheckpointError):
        create_model("encoder_classifier", pretrained=str(tmp_path / "nope"))
    with pytest.raises(ConfigError):
        create_model("encoder_classifier", autoencoder="cae28", mode="frozen")


def test_class_weights_and_balanced_sampling(digits16) -> None:
    keep = torch.cat([torch.nonzero(digits16.labels == c).flatten()[: (20 if c == 0 else 3)] for c in range(10)])
    data = digits16.subset(keep)
    objective = build_objective("classify", class_weights="balanced", balanced_sampling=True)
    weights = objective.sample_weights(data)
    counts = torch.bincount(data.labels, minlength=10).float()
    torch.testing.assert_close(objective._weights, len(data) / (10 * counts))
    assert weights[data.labels == 0].sum().item() == pytest.approx(weights[data.labels == 1].sum().item())
    with pytest.raises(ConfigError):
        build_objective("classify", class_weights="inverse")
    model = create_model("lenet5", num_classes=10, input_shape=(1, 16, 16))
    _, history = _train(model, data, epochs=3, class_weights="balanced", balanced_sampling=True)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_classify_reports_accuracy_and_monitors_it(digits16) -> None:
    objective = build_objective("classify")
    assert (objective.monitor, objective.monitor_mode) == ("val_accuracy", "max")
    model = create_model("cifar10_quick", num_classes=10, input_shape=(1, 16, 16))
    engine = Engine(model, objective, TrainConfig(epochs=1, batch_size=64, progress=False, device="cpu"), OptimConfig())
    values = engine.evaluate(digits16)
    assert set(values) == {"loss", "accuracy"} and 0 <= values["accuracy"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("backbone,upsample,shape", [("resnet18", "nearest", (1, 28, 28)), ("vgg11", "max", (3, 32, 32))])
def test_backbone_autoencoder_reconstructs_and_learns(digits16, backbone: str, upsample: str, shape) -> None:
    deep = create_model("backbone_ae", backbone=backbone, input_shape=shape, depth=4, upsample=upsample).eval()
    y = deep(torch.rand(1, *shape))
    assert y.shape == (1, *shape) and y.min() >= 0 and y.max() <= 1  # 28 -> 14 -> 7 -> 4 comes back to 28 exactly
    model = create_model("backbone_ae", backbone=backbone, input_shape=(1, 16, 16), depth=2, upsample=upsample)
    assert model.encode(digits16.unit_images(0, 4)).shape == (4, model.encoder.out_channels * 8 * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, history = _train(model, digits16.subset(torch.arange(64)), objective="reconstruct", epochs=3)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    with pytest.raises(ConfigError):
        create_model("backbone_ae", backbone="resnet18", upsample="max")(torch.rand(1, 3, 32, 32))
