"""GAN: one step changes only the intended network, k discriminator steps per generator step, optimiser settings,
and a short real DCGAN training through the engine."""

from __future__ import annotations

import pytest
import torch

from caekit.api import train
from caekit.config import OptimConfig, TrainConfig
from caekit.errors import ConfigError
from caekit.models import create_model
from caekit.training.engine import Engine
from caekit.training.gan import GAN


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return [not torch.equal(b, p.detach()) for b, p in zip(before, module.parameters())]


def _engine(model, objective):
    return Engine(
        model, objective, TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu", channels_last=False), OptimConfig()
    )


def test_generator_and_discriminator_shapes():
    model = create_model("dcgan", input_shape=(1, 28, 28), latent_dim=8, width=8)
    z = model.noise(3)
    assert model(z).shape == (3, 1, 28, 28) and model(z).min() >= 0 and model(z).max() <= 1
    assert model.discriminator(torch.zeros(3, 1, 28, 28)).shape == (3,)
    conditional = create_model("cdcgan", input_shape=(3, 32, 32), latent_dim=8, width=8, num_classes=4)
    assert conditional.sample(8).shape == (8, 3, 32, 32)
    deeper = create_model("dcgan", input_shape=(1, 28, 28), latent_dim=8, width=8, extra_layers=2)
    assert deeper(z).shape == (3, 1, 28, 28) and deeper.discriminator(torch.zeros(3, 1, 28, 28)).shape == (3,)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (model.generator, model.discriminator)]
    assert [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (deeper.generator, deeper.discriminator)] == [
        convs[0] + 2,
        convs[1] + 2,
    ]


def test_d_steps_update_only_the_discriminator_and_g_steps_only_the_generator():
    torch.manual_seed(0)
    model = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8)
    objective = GAN(d_steps=2)
    engine = _engine(model, objective)
    batch = {"image": torch.rand(16, 1, 8, 8), "label": torch.zeros(16, dtype=torch.long)}
    g0, d0 = _params(model.generator), _params(model.discriminator)
    objective.train_step(model, batch, engine._step)  # first of k=2: a discriminator step only
    assert all(_changed(d0, model.discriminator)) and not any(_changed(g0, model.generator))
    d1 = _params(model.discriminator)
    objective.train_step(model, batch, engine._step)  # second: discriminator, then generator
    assert any(_changed(g0, model.generator)) and any(_changed(d1, model.discriminator))


def test_generator_step_leaves_the_discriminator_alone():
    torch.manual_seed(0)
    model = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8)
    objective = GAN()
    engine = _engine(model, objective)
    g0, d0 = _params(model.generator), _params(model.discriminator)
    engine._step("generator", objective.generator_loss(model, 16, None))
    assert not any(_changed(d0, model.discriminator)) and all(_changed(g0, model.generator))


def test_averaged_generator_follows_each_generator_step_and_is_what_samples(tmp_path):
    from caekit.checkpoint import FORMAT as CHECKPOINT_FORMAT
    from caekit.checkpoint import save_checkpoint
    from caekit.inference import load

    torch.manual_seed(0)
    model = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8, ema_decay=0.75)
    objective = GAN(d_steps=2)
    engine = _engine(model, objective)
    batch = {"image": torch.rand(16, 1, 8, 8), "label": torch.zeros(16, dtype=torch.long)}
    start = _params(model.generator_ema)
    objective.train_step(model, batch, engine._step)  # a discriminator step: the average stays
    assert not any(_changed(start, model.generator_ema))
    objective.train_step(model, batch, engine._step)  # then a generator step: the average moves a quarter of the way
    for avg, old, new in zip(model.generator_ema.parameters(), start, model.generator.parameters()):
        torch.testing.assert_close(avg, 0.75 * old + 0.25 * new.detach())
    assert not any(p.requires_grad for p in model.generator_ema.parameters())
    z = model.noise(4)
    model.eval()
    torch.testing.assert_close(model(z), (model.generator_ema(z) + 1) / 2)
    assert not torch.allclose(model(z), (model.generator(z) + 1) / 2)
    save_checkpoint(
        tmp_path / "gan.safetensors",
        model,
        {
            "format": CHECKPOINT_FORMAT,
            "image_shape": [1, 8, 8],
            "model": {"name": "dcgan", "args": {"input_shape": [1, 8, 8], "latent_dim": 4, "width": 8, "ema_decay": 0.75}},
        },
    )
    loaded, _ = load(tmp_path / "gan.safetensors")
    torch.testing.assert_close(loaded.eval()(z), model(z))


def test_gan_optimisers_follow_dcgan_defaults_and_label_smoothing_changes_the_target():
    model = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8)
    engine = _engine(model, GAN())
    for name in ("generator", "discriminator"):
        group = engine.optimizers[name].param_groups[0]
        assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999) and group["weight_decay"] == 0
    real = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    plain = GAN().discriminator_loss(model, real, None)[0]
    torch.manual_seed(0)
    smoothed = GAN(label_smoothing=0.2).discriminator_loss(model, real, None)[0]
    assert not torch.allclose(plain, smoothed)
    with pytest.raises(ConfigError, match="d_steps"):
        GAN(d_steps=0)


@pytest.mark.slow
def test_dcgan_trains_through_the_engine_and_draws_samples(tmp_path):
    result = train(
        {
            "runs_dir": str(tmp_path),
            "name": "gan",
            "model": {"name": "cdcgan", "args": {"latent_dim": 16, "width": 16}},
            "data": {"name": "digits", "limit": 300},
            "objective": {"name": "gan", "args": {"label_smoothing": 0.1}},
            "train": {"epochs": 3, "batch_size": 32, "progress": False},
        }
    )
    rows = result.history
    # the discriminator learns to tell real from generated: its outputs separate
    assert rows[-1]["train_d_real"] > rows[-1]["train_d_fake"]
    assert (result.run.path / "samples.png").stat().st_size > 1000
    assert (result.run.path / "samples_per_epoch.png").is_file() and (result.run.path / "gan_curves.png").is_file()
    assert result.run.checkpoint("best").is_file()


def test_spectral_discriminator_has_unit_spectral_norms_and_survives_a_checkpoint(tmp_path):
    from caekit.checkpoint import FORMAT as CHECKPOINT_FORMAT
    from caekit.checkpoint import save_checkpoint
    from caekit.inference import load

    torch.manual_seed(0)
    model = create_model("dcgan", input_shape=(1, 28, 28), latent_dim=4, width=8, d_norm="spectral")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.discriminator.modules())
    x = torch.rand(4, 1, 28, 28)
    for _ in range(50):  # power iterations run in training mode
        model.discriminator(x)
    convs = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        assert torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.1)
    args = {"input_shape": [1, 28, 28], "latent_dim": 4, "width": 8, "d_norm": "spectral"}
    save_checkpoint(
        tmp_path / "sn.safetensors",
        model,
        {"format": CHECKPOINT_FORMAT, "image_shape": [1, 28, 28], "model": {"name": "dcgan", "args": args}},
    )
    loaded, _ = load(tmp_path / "sn.safetensors")
    torch.testing.assert_close(loaded.eval().discriminator(x), model.eval().discriminator(x))
    with pytest.raises(Exception, match="norm"):
        create_model("dcgan", d_norm="layer")


def test_hinge_loss_against_the_discriminator_outputs():
    torch.manual_seed(0)
    model = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8, d_norm="spectral").eval()
    real = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(1)
    loss, _, _ = GAN(loss="hinge").discriminator_loss(model, real, None)
    torch.manual_seed(1)
    fake = model.generator(model.noise(8))
    expected = torch.relu(1 - model.discriminator(real)) + torch.relu(1 + model.discriminator(fake))
    torch.testing.assert_close(loss, expected)
    torch.manual_seed(2)
    g_loss = GAN(loss="hinge").generator_loss(model, 8, None)
    torch.manual_seed(2)
    torch.testing.assert_close(g_loss, -model.discriminator(model.generator(model.noise(8))).mean())
    with pytest.raises(Exception, match="smoothing"):
        GAN(loss="hinge", label_smoothing=0.1)


@pytest.mark.parametrize("d_norm", ["batch", "spectral"])
def test_projection_discriminator_adds_the_class_embedding_times_the_pooled_features(d_norm):
    torch.manual_seed(0)
    model = create_model(
        "cdcgan", input_shape=(1, 28, 28), latent_dim=4, width=8, num_classes=3, d_norm=d_norm, d_conditioning="projection"
    ).eval()
    d = model.discriminator
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1])
    features = d.net[:-1](x)
    expected = d.net[-1](features).flatten() + (d.embed.weight[labels] * features.sum((2, 3))).sum(1)
    torch.testing.assert_close(d(x, labels), expected)
    assert d.net[0].in_channels == 1  # the image alone: no label planes
    assert not torch.allclose(d(x, labels), d(x, (labels + 1) % 3))  # the logit depends on the asked-for class
    concat = create_model("cdcgan", input_shape=(1, 28, 28), latent_dim=4, width=8, num_classes=3)  # the default
    assert concat.discriminator.net[0].in_channels == 4 and concat.discriminator.embed is None
    with pytest.raises(Exception, match="conditioning"):
        create_model("cdcgan", d_conditioning="film")


def test_minibatch_std_channel_is_zero_for_identical_images_and_reaches_the_logit():
    from caekit.models.gan import MinibatchStd

    same = torch.rand(1, 3, 4, 4).expand(8, 3, 4, 4)
    assert torch.equal(MinibatchStd()(same)[:, 3], torch.zeros(8, 4, 4))
    x = torch.rand(6, 2, 3, 3)  # 6 is no multiple of 4: one group, the whole batch
    expected = x.std(0, unbiased=False).mean()
    torch.testing.assert_close(MinibatchStd()(x)[:, 2], expected.expand(6, 3, 3))
    model = create_model(
        "cdcgan", input_shape=(1, 28, 28), latent_dim=4, width=8, num_classes=3, d_minibatch_std=True, d_conditioning="projection"
    )
    d = model.discriminator.eval()
    assert d.net[-1].in_channels == 17 and d.embed.weight.shape == (3, 17)
    with torch.no_grad():
        d.net[-1].weight[:, -1] = 10.0
    diverse, labels = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 0])
    collapsed = diverse[:1].expand(4, 1, 28, 28).contiguous()
    # the same first image is scored differently in a batch of copies: only the spread channel differs
    assert abs(d(diverse, labels)[0] - d(collapsed, labels)[0]) > 1e-3


def test_conditional_batch_norm_generator_takes_z_alone_and_the_class_in_every_norm():
    from caekit.models.gan import ConditionalBatchNorm2d

    torch.manual_seed(0)
    norm = ConditionalBatchNorm2d(4, num_classes=3)
    with torch.no_grad():
        norm.scale.weight.copy_(torch.arange(12.0).view(3, 4))
        norm.shift.weight.copy_(-torch.arange(12.0).view(3, 4))
    x, labels = torch.randn(6, 4, 5, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    normalised = (x - x.mean((0, 2, 3), keepdim=True)) / (x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    expected = normalised * norm.scale.weight[labels][:, :, None, None] + norm.shift.weight[labels][:, :, None, None]
    torch.testing.assert_close(norm(x, labels), expected)

    model = create_model("cdcgan", input_shape=(1, 28, 28), latent_dim=8, width=8, num_classes=3, g_conditioning="batchnorm")
    g = model.generator.eval()
    assert g.embed is None and g.net[0].in_channels == 8  # z alone enters the first layer
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.affine for m in norms)  # every norm's scale and shift come from the class
    z = model.noise(4)
    with torch.no_grad():
        for cbn in (m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)):
            cbn.shift.weight[1] += 1.0  # class 1 now differs from class 0
        assert g(z, torch.zeros(4, dtype=torch.long)).shape == (4, 1, 28, 28)
        assert not torch.allclose(g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.ones(4, dtype=torch.long)))
    with pytest.raises(Exception, match="class labels"):
        g(z)
    with pytest.raises(Exception, match="generator conditioning"):
        create_model("cdcgan", g_conditioning="concat")


def test_checkpoints_record_every_builder_argument_so_an_older_default_still_loads(tmp_path):
    from caekit.checkpoint import FORMAT as CHECKPOINT_FORMAT
    from caekit.checkpoint import save_checkpoint
    from caekit.inference import load
    from caekit.runner import model_arguments

    args = model_arguments("cdcgan", {"latent_dim": 4, "width": 8}, (1, 28, 28), 3)
    assert args | {"input_shape": None} == {
        "input_shape": None,
        "latent_dim": 4,
        "width": 8,
        "num_classes": 3,
        "ema_decay": 0.0,
        "d_norm": "batch",
        "extra_layers": 0,
        "d_conditioning": "concat",
        "d_minibatch_std": False,
        "g_conditioning": "batchnorm",
    }
    assert args["input_shape"] == [1, 28, 28]
    torch.manual_seed(0)
    older = {**args, "g_conditioning": "embedding"}  # the default before conditional batch norm
    model = create_model("cdcgan", **older).eval()
    save_checkpoint(
        tmp_path / "old.safetensors",
        model,
        {"format": CHECKPOINT_FORMAT, "image_shape": [1, 28, 28], "model": {"name": "cdcgan", "args": older}},
    )
    loaded, _ = load(tmp_path / "old.safetensors")
    assert loaded.generator.embed is not None
    z, labels = model.noise(3), torch.tensor([0, 1, 2])
    torch.testing.assert_close(loaded(z, labels), model(z, labels))


def test_balanced_sampling_draws_rare_classes_as_often_as_common_ones():
    from caekit.data.imageset import ImageSet

    labels = torch.tensor([0] * 90 + [1] * 10)
    data = ImageSet(torch.zeros(100, 1, 8, 8, dtype=torch.uint8), labels, ["common", "rare"], "toy")
    assert GAN().sample_weights(data) is None
    weights = GAN(balanced_sampling=True).sample_weights(data)
    assert weights[labels == 0].sum().item() == pytest.approx(weights[labels == 1].sum().item())
    draws = labels[torch.multinomial(weights, 20000, replacement=True, generator=torch.Generator().manual_seed(0))]
    assert draws.float().mean().item() == pytest.approx(0.5, abs=0.02)
