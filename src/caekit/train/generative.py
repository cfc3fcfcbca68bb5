"""Objectives of the autoencoder family: denoise, greedy stage, ELBO (VAE / conditional VAE), GAN (DCGAN / cGAN).

They plug into the one engine like ``reconstruct``; the GAN keeps two optimisers (``param_groups`` generator and
discriminator) and steps them itself in ``train_step``. ``train_stacked`` runs greedy layer-wise training of a
stacked autoencoder as a sequence of ordinary runs, one per stage, and a final end-to-end fine-tuning run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit import viz
from caekit.data.imageset import ImageSet
from caekit.data.noise import Corruption, seeded
from caekit.errors import ConfigError
from caekit.evaluate.metrics import psnr, ssim
from caekit.runs import RunFolder
from caekit.train.objectives import Objective, Reconstruct, Step, call, reconstruction_loss, register_objective, unwrap
from caekit.train.supervised import balanced_sample_weights

# --------------------------------------------------------------------------------------------- denoising


@register_objective("denoise")
class Denoise(Reconstruct):
    """Denoising autoencoder: corrupt the input on the fly (gaussian sigma, salt_pepper amount, mask fraction),
    reconstruct the clean image. ``level`` is one value, or a range [low, high] from which each image draws its own
    level (a blind denoiser for several noise levels). Validation corrupts with a fixed seed, so epochs compare."""

    def __init__(self, loss: str = "mse", noise: str = "gaussian", level: float | list[float] = 0.3, seed: int = 1234) -> None:
        super().__init__(loss)
        levels = [float(v) for v in level] if isinstance(level, (list, tuple)) else [float(level)]
        if len(levels) not in (1, 2) or levels[0] > levels[-1]:
            raise ConfigError(f"denoise level is a number or a range [low, high], got {level}")
        self.corruptions = [Corruption(noise, v) for v in levels]  # validates both ends
        self.corruption = self.corruptions[-1]
        self.levels = levels
        self.seed = seed
        self._generator: torch.Generator | None = None

    def inputs(self, batch: dict[str, Tensor]) -> Tensor:
        x = batch["image"]
        if len(self.levels) == 1:
            return self.corruption(x, self._generator)
        low, high = self.levels
        device = x.device if self._generator is None else self._generator.device
        level = torch.rand((len(x), 1, 1, 1), generator=self._generator, device=device).to(x.device, x.dtype) * (high - low) + low
        return self.corruption.apply(x, level, self._generator)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # seeded by the batch content: the same images get the same noise every epoch, different images different noise
        self._generator = seeded(self.seed + int(batch["image"].double().sum().item() * 1000) % 2**31, batch["image"].device)
        try:
            noisy = self.inputs(batch)
        finally:
            self._generator = None
        target = batch["image"]
        output = model(noisy).float()
        per_image = reconstruction_loss(self.loss_name, output, target, "none").flatten(1).mean(1)
        return {"loss": per_image, "mse": (output - target).pow(2).flatten(1).mean(1), "psnr": psnr(output, target),
                "ssim": ssim(output, target), "noisy_psnr": psnr(noisy, target)}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        noisy = self.corruption(images, seeded(self.seed, images.device))
        rows = [(f"noisy\n({self.corruption})", noisy), ("denoised", model(noisy)), ("clean", images)]
        return [viz.image_rows(rows, folder / "denoising.png")]


# --------------------------------------------------------------------------------------------- greedy stacking


@register_objective("stage")
class GreedyStage(Objective):
    """Train stage ``train_stage`` of a ``StackedAutoencoder`` to reconstruct its frozen input (the codes below)."""

    def __init__(self, loss: str = "mse") -> None:
        reconstruction_loss(loss, torch.zeros(1), torch.zeros(1))
        self.loss_name = loss

    def _pair(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        if getattr(unwrap(model), "train_stage", None) is None:
            raise ConfigError("objective 'stage' needs a stacked model with model.args.train_stage set")
        return call(model, _stage_pair, x)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        output, target = self._pair(model, batch["image"])
        return reconstruction_loss(self.loss_name, output, target), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        output, target = self._pair(model, batch["image"])
        return {"loss": reconstruction_loss(self.loss_name, output, target, "none").flatten(1).mean(1)}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        """The image as seen through this stage: encode to stage k, reconstruct it, decode down to pixels."""
        net = unwrap(model)
        k = net.train_stage
        code = net.stage_forward(net.stage_target(images))
        for decoder in reversed(list(net.decoders)[:k]):
            code = decoder(code)
        return [viz.reconstructions(images, code, folder / "reconstructions.png", title=f"through stage {k + 1}")]


def _stage_pair(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    target = net.stage_target(x)
    return net.stage_forward(target), target


@dataclass
class StackedResult:
    stage_runs: list[Path]
    finetune_run: Path | None
    model: nn.Module
    test: dict[str, float]
    stage_tests: list[dict[str, float]]


def train_stacked(config: dict[str, Any], stages: list[dict[str, Any]], stage_epochs: int | None = None,
                  finetune_epochs: int | None = None, overrides: dict[str, Any] | list[str] | None = None) -> StackedResult:
    """Greedy layer-wise training: stage k learns to reconstruct the frozen codes of stages < k (one run each),
    then the stacked encoders and decoders are fine-tuned end to end (``finetune_epochs`` 0 skips it).

    ``config`` is an ordinary run config (data, optim, train, runs_dir, name); its model and objective are set here.
    """
    from caekit.api import resolve_config, train

    if not stages:
        raise ConfigError("greedy stacking needs at least one stage, e.g. [{type: fc, units: 256}, {type: fc, units: 64}]")
    base = resolve_config(config, overrides).model_dump(mode="json")
    name = base.get("name") or "stacked"
    init: str | None = None
    runs: list[Path] = []
    tests: list[dict[str, float]] = []
    result = None
    # the stacked model's own options (e.g. input_shape, output_activation) carry over; another model's do not
    model_args = dict(base["model"].get("args", {})) if base["model"]["name"] == "stacked" else {}
    loss = base["objective"]["args"].get("loss", "mse") if base["objective"]["name"] in ("reconstruct", "stage") else "mse"

    def run_config(suffix: str, train_stage: int | None, objective: str, epochs: int | None) -> dict[str, Any]:
        cfg = copy.deepcopy(base)
        cfg["name"] = f"{name}-{suffix}"
        cfg["model"] = {"name": "stacked", "args": {**model_args, "stages": stages, "train_stage": train_stage, "init": init}}
        cfg["objective"] = {"name": objective, "args": {"loss": loss}}
        if epochs:
            cfg["train"]["epochs"] = epochs
        return cfg

    for k in range(len(stages)):
        result = train(run_config(f"stage{k + 1}", k, "stage", stage_epochs))
        tests.append(result.test)
        if result.run is None:
            raise ConfigError("greedy stacking keeps each stage's run folder; it cannot run with write_run=False")
        runs.append(result.run.path)
        init = str(result.run.path.resolve())  # absolute, so the stored model arguments work from any folder
    assert result is not None
    finetune_run = None
    if finetune_epochs != 0:
        result = train(run_config("finetune", None, "reconstruct", finetune_epochs))
        finetune_run = result.run.path if result.run else None
    return StackedResult(runs, finetune_run, result.model, result.test, tests)


# --------------------------------------------------------------------------------------------- VAE

BINARISE = ("none", "threshold", "dynamic")


def binarise(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """none: grey levels as they are; threshold: x > 0.5; dynamic: a Bernoulli draw with p = x."""
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    device = x.device if generator is None else generator.device
    return (torch.rand(x.shape, generator=generator, device=device).to(x.device) < x).to(x.dtype)


def _labels(net: nn.Module, batch: dict[str, Tensor]) -> Tensor | None:
    return batch["label"] if getattr(net, "num_classes", 0) else None


@register_objective("elbo")
class ELBO(Objective):
    """Negative evidence lower bound, -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)), in nats per image.

    ``warmup_steps`` ramps the KL weight linearly from 0 to ``beta`` over that many training steps (the engine does
    not tell objectives the epoch; steps per epoch = ceil(train images / batch size)). Validation reports the true
    bound (beta = 1) as ``loss``/``elbo``, plus ``rec`` and ``kl``. ``binarise``: none, threshold or dynamic;
    evaluation binarises dynamic data with a fixed seed.
    """

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, binarise: str = "none", seed: int = 1234) -> None:
        if binarise not in BINARISE:
            raise ConfigError(f"unknown binarise '{binarise}'; choose one of: {', '.join(BINARISE)}")
        if beta < 0:
            raise ConfigError(f"beta must be >= 0, got {beta}")
        self.beta, self.warmup_steps, self.binarise, self.seed = beta, warmup_steps, binarise, seed
        self.steps = 0
        self.samples_per_epoch: list[Tensor] = []
        self._trained = False

    def kl_weight(self) -> float:
        if self.warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, self.steps / self.warmup_steps)

    def terms(self, model: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Per-image reconstruction NLL and KL, both in nats."""
        x = binarise(batch["image"], self.binarise, generator)
        return call(model, _vae_terms, x, _labels(unwrap(model), batch))

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        rec, kl = self.terms(model, batch)
        weight = self.kl_weight()
        return (rec + weight * kl).mean(), {"rec": rec.mean().detach(), "kl": kl.mean().detach(),
                                            "beta": torch.tensor(weight, device=rec.device)}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def train_step(self, model: nn.Module, batch: dict[str, Tensor], step: Step) -> dict[str, Tensor]:
        metrics = super().train_step(model, batch, step)
        self.steps += 1
        self._trained = True
        return metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self._trained:  # the first validation batch after an epoch of training: keep a sample grid for pictures
            self._trained = False
            net = unwrap(model)
            self.samples_per_epoch.append(net.sample(16, generator=seeded(self.seed)).cpu())
        rec, kl = self.terms(model, batch, seeded(self.seed + int(batch["image"].double().sum().item() * 1000) % 2**31, batch["image"].device))
        return {"loss": rec + kl, "elbo": -(rec + kl), "rec": rec, "kl": kl}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        from caekit.viz import generative as gviz

        net = unwrap(model)
        labels = torch.arange(len(images), device=images.device) % net.num_classes if net.num_classes else None
        paths = [viz.reconstructions(images, net(binarise(images, self.binarise), labels), folder / "reconstructions.png"),
                 gviz.sample_grid(net.sample(64, generator=seeded(self.seed)), folder / "prior_samples.png", "samples from the prior")]
        if not net.num_classes and len(images) >= 2:
            paths.append(gviz.interpolation(net, images[0:1], images[1:2], folder / "interpolation.png"))
        if net.latent_dim == 2 and not net.num_classes:
            paths.append(gviz.manifold(net, folder / "manifold.png"))
        if self.samples_per_epoch:
            paths.append(gviz.epoch_rows(self.samples_per_epoch, folder / "samples_per_epoch.png"))
        return paths


def _vae_terms(net: nn.Module, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    from caekit.models.vae import kl_standard_normal

    mean, logvar = net.posterior(x, labels)
    z = net.reparameterise(mean, logvar)
    return -net.log_likelihood(net.decode_raw(z, labels), x), kl_standard_normal(mean, logvar)


# --------------------------------------------------------------------------------------------- GAN


@register_objective("gan")
class GAN(Objective):
    """DCGAN training (conditional when the model has classes): ``d_steps`` discriminator updates per generator
    update. ``loss="bce"``: the non-saturating loss, optional one-sided label smoothing (real target 1 - smoothing);
    ``loss="hinge"``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G maximises D(G(z)) (as in SNGAN).

    ``balanced_sampling`` draws the real batches class-balanced (with replacement), so that a conditional GAN on
    imbalanced data trains the rare classes' conditioning as often as the common ones'.

    Adam 2e-4, beta1 0.5, no weight decay for both networks unless given. There is no meaningful validation loss,
    so the last epoch is kept as ``best`` (monitor ``epoch``); validation reports D's mean outputs on real and
    generated images. A fixed-noise sample grid is kept every epoch and drawn after training.
    """

    monitor = "epoch"
    monitor_mode = "max"
    uses_part_of_model = True  # a discriminator step runs the generator without gradients

    def __init__(self, d_steps: int = 1, label_smoothing: float = 0.0, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 weight_decay: float = 0.0, loss: str = "bce", seed: int = 1234, balanced_sampling: bool = False) -> None:
        if d_steps < 1:
            raise ConfigError(f"d_steps must be >= 1, got {d_steps}")
        if not 0 <= label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing}")
        if loss not in ("bce", "hinge"):
            raise ConfigError(f"unknown GAN loss '{loss}'; choose bce or hinge")
        if loss == "hinge" and label_smoothing:
            raise ConfigError("label_smoothing applies to the bce GAN loss only; the hinge loss has no targets to smooth")
        self.d_steps, self.smoothing, self.kind, self.seed = d_steps, label_smoothing, loss, seed
        self.balanced_sampling = balanced_sampling
        self.settings = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
        self.count = 0
        self.samples_per_epoch: list[Tensor] = []
        self._trained = False
        self._last_g = torch.zeros(())

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def sample_weights(self, data: ImageSet) -> Tensor | None:
        return balanced_sample_weights(data.labels, len(data.classes)) if self.balanced_sampling else None

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        net = unwrap(model)
        return {"generator": list(net.generator.parameters()), "discriminator": list(net.discriminator.parameters())}

    def optimizer_overrides(self) -> dict[str, dict[str, Any]]:
        return {"generator": dict(self.settings), "discriminator": dict(self.settings)}

    def discriminator_loss(self, net: nn.Module, real: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """BCE of D on real (target 1 - smoothing) and generated (target 0) images; real in [-1, 1]."""
        z = net.noise(len(real))
        with torch.no_grad():
            fake = net.generator(z, labels)
        d_real, d_fake = net.discriminator(real, labels).float(), net.discriminator(fake, labels).float()
        if self.kind == "hinge":
            loss = F.relu(1 - d_real) + F.relu(1 + d_fake)
        else:
            loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 1 - self.smoothing), reduction="none")
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake), reduction="none"))
        return loss, torch.sigmoid(d_real), torch.sigmoid(d_fake)

    def generator_loss(self, net: nn.Module, n: int, labels: Tensor | None) -> Tensor:
        """Non-saturating loss -log D(G(z)), or -D(G(z)) for the hinge loss."""
        logits = net.discriminator(net.generator(net.noise(n), labels), labels).float()
        if self.kind == "hinge":
            return -logits.mean()
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def train_step(self, model: nn.Module, batch: dict[str, Tensor], step: Step) -> dict[str, Tensor]:
        real = batch["image"] * 2 - 1
        labels = _labels(unwrap(model), batch)
        d_loss, d_real, d_fake = call(model, self.discriminator_loss, real, labels)
        d_loss = d_loss.mean()
        step("discriminator", d_loss)
        self.count += 1
        self._trained = True
        if self.count % self.d_steps == 0:
            g_loss = call(model, self.generator_loss, len(real), labels)
            step("generator", g_loss)
            if hasattr(unwrap(model), "update_ema"):
                unwrap(model).update_ema()
            self._last_g = g_loss.detach()
        g = self._last_g.to(d_loss.device)
        return {"loss": d_loss.detach() + g, "d_loss": d_loss.detach(), "g_loss": g,
                "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        net = unwrap(model)
        if self._trained:
            self._trained = False
            self.samples_per_epoch.append(net.sample(16, generator=seeded(self.seed)).cpu())
        labels = _labels(net, batch)
        loss, d_real, d_fake = self.discriminator_loss(net, batch["image"] * 2 - 1, labels)
        return {"loss": loss, "d_real": d_real, "d_fake": d_fake}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        from caekit.viz import generative as gviz

        net = unwrap(model)
        paths = [gviz.sample_grid(net.sample(100, generator=seeded(self.seed)), folder / "samples.png",
                                  "generated samples" + (" (one class per column)" if net.num_classes else ""), columns=10)]
        if self.samples_per_epoch:
            paths.append(gviz.epoch_rows(self.samples_per_epoch, folder / "samples_per_epoch.png"))
        history = RunFolder(folder).read_metrics()
        if history:
            paths.append(gviz.gan_curves(history, folder / "gan_curves.png"))
        return paths


# --------------------------------------------------------------------------------------------- the 8-3-8 encoder


@dataclass
class Encoder838:
    inputs: Tensor  # [n, n] one-hot rows
    codes: Tensor  # [n, hidden] hidden-unit activations
    outputs: Tensor  # [n, n] reconstructions
    history: list[dict[str, float]]

    def table(self) -> str:
        """Inputs, codes (and the codes rounded to bits) and outputs, one line per pattern."""
        n, hidden = self.inputs.shape[1], self.codes.shape[1]
        head = f"{'input':<{2 * n}}  {'code':<{6 * hidden}}  {'bits':<{hidden + 1}}  output"
        lines = [head, "-" * len(head) + "-" * (5 * n)]
        for x, c, y in zip(self.inputs, self.codes, self.outputs):
            bits = "".join(str(int(v > 0.5)) for v in c)
            lines.append(f"{' '.join(str(int(v)) for v in x):<{2 * n}}  {' '.join(f'{v:.2f}' for v in c):<{6 * hidden}}  "
                         f"{bits:<{hidden + 1}}  {' '.join(f'{v:.2f}' for v in y)}")
        return "\n".join(lines)

    @property
    def distinct_codes(self) -> int:
        return len({tuple((c > 0.5).tolist()) for c in self.codes})


def encoder_838(n: int = 8, hidden: int = 3, epochs: int = 10, steps_per_epoch: int = 400, lr: float = 0.05, seed: int = 0) -> Encoder838:
    """Train the n-h-n encoder problem (one-hot patterns through ``hidden`` sigmoid units) with the engine.

    An epoch shows each pattern ``steps_per_epoch`` times in shuffled batches of n, so the engine prints a few lines.
    """
    from caekit.config import OptimConfig, TrainConfig
    from caekit.models.stacked import StackedAutoencoder, one_hot_patterns
    from caekit.train.engine import Engine

    torch.manual_seed(seed)
    images = one_hot_patterns(n)
    data = ImageSet(images.repeat(steps_per_epoch, 1, 1, 1), torch.arange(n).repeat(steps_per_epoch), [str(i) for i in range(n)], f"one-hot-{n}")
    model = StackedAutoencoder((1, 1, n), [{"type": "fc", "units": hidden, "activation": "sigmoid"}])
    engine = Engine(model, Reconstruct("bce"), TrainConfig(epochs=epochs, batch_size=n, seed=seed, progress=False, device="cpu",
                                                              channels_last=False),
                    OptimConfig(lr=lr, weight_decay=0.0))
    history = engine.fit(data)
    engine.close()
    model.eval()
    with torch.no_grad():
        x = images.float() / 255
        codes, outputs = model.encode(x), model(x).flatten(1)
    return Encoder838(x.flatten(1), codes, outputs, history)
