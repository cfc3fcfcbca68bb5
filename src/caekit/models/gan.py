"""DCGAN (Radford et al. 2016): transposed-conv generator and strided-conv discriminator, optionally conditional.

Generator: z -> ConvTranspose to a base size -> (ConvTranspose 4/2/1, BN, ReLU)* -> tanh. A conditional generator
takes the class through every batch norm's scale and shift (``g_conditioning="batchnorm"``, the default) or as a
learned embedding beside z (``"embedding"``; measured on MNIST: G learns to ignore z, one image per class).
Discriminator: (Conv 4/2/1, LeakyReLU 0.2; BN after the first)* -> Conv over the base size -> one logit. With
``d_norm="spectral"`` every convolution is spectrally normalised instead and batch norm is left out (SNGAN,
Miyato et al. 2018), which keeps D Lipschitz and pairs with the hinge loss of the GAN objective.
``extra_layers`` adds that many 3x3 conv blocks at the base size to both networks (more capacity where the global
shape of a digit forms; the DCGAN reference code's ``n_extra_layers`` adds them at the full size instead).
A conditional discriminator either sees the label as one-hot planes beside the image (``d_conditioning="concat"``,
cGAN, Mirza & Osindero 2014, the default) or adds the inner product of a learned class embedding with its pooled
features to its logit (``"projection"``, Miyato & Koyama 2018). ``d_minibatch_std``
gives the discriminator a channel measuring how much a batch's images differ, against a generator that draws one
image whatever z is.
Images cross the model boundary in [0, 1]; inside, the networks work in [-1, 1] as DCGAN does.
With ``ema_decay`` > 0 the model also keeps an exponential moving average of the generator's weights (Yazici et al.
2019), updated after every generator step; sampling uses the average, which smooths out the oscillations of
adversarial training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from caekit.errors import ConfigError
from caekit.layers import ConvTranspose2d
from caekit.models.registry import register_model
from caekit.spec import as_shape


def _base_size(size: int, max_base: int = 7) -> tuple[int, int]:
    """Halve ``size`` until it is at most ``max_base``: (base size, number of 2x up/down steps)."""
    steps = 0
    while size > max_base:
        if size % 2:
            raise ConfigError(f"image size {size * 2**steps} cannot be halved down to 7 or less; use e.g. 28, 32 or 64")
        size, steps = size // 2, steps + 1
    return size, steps


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        spectral = parametrize.is_parametrized(module, "weight")
        # torch types a module's attributes (here the parametrization's ModuleDict) as Tensor | Module
        nn.init.normal_(
            module.parametrizations.weight.original  # type: ignore[union-attr, arg-type]
            if spectral
            else module.weight,
            0.0,
            0.02,
        )
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017; the generators of SNGAN and
    BigGAN): the label steers every layer's features instead of entering beside z, where G can outweigh z."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale, self.shift = nn.Embedding(num_classes, channels), nn.Embedding(num_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02)  # the DCGAN init of a batch-norm scale, per class
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.norm(x) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


@dataclass(frozen=True)
class Frame:
    """What a DCGAN's generator and discriminator share: the images' channels and side, the width of the
    full-size block (doubled at every halving), the number of classes (0: unconditional) and how many 3x3 blocks
    are added at the base size."""

    channels: int
    size: int
    width: int = 64
    num_classes: int = 0
    extra_layers: int = 0


G_CONDITIONINGS = ("embedding", "batchnorm")


class Generator(nn.Module):
    def __init__(self, frame: Frame, latent_dim: int = 64, conditioning: str = "batchnorm") -> None:
        super().__init__()
        if conditioning not in G_CONDITIONINGS:
            raise ConfigError(f"unknown generator conditioning '{conditioning}'; choose one of {', '.join(G_CONDITIONINGS)}")
        width, num_classes, extra_layers = frame.width, frame.num_classes, frame.extra_layers
        base, steps = _base_size(frame.size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        embed = bool(num_classes) and conditioning == "embedding"
        self.embed = nn.Embedding(num_classes, latent_dim) if embed else None

        def norm(channels: int) -> nn.Module:
            return ConditionalBatchNorm2d(channels, num_classes) if num_classes and not embed else nn.BatchNorm2d(channels)

        c = width * 2 ** max(steps - 1, 0)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim * (2 if embed else 1), c, base, 1, 0, bias=False),
            norm(c),
            nn.ReLU(True),
        ]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), norm(c), nn.ReLU(True)]
        for _ in range(steps - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), norm(c // 2), nn.ReLU(True)]
            c //= 2
        out = frame.channels
        layers += [ConvTranspose2d(c, out, 4, 2, 1) if steps else nn.Conv2d(c, out, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [-1, 1]."""
        if self.num_classes and labels is None:
            raise ConfigError("a conditional generator needs class labels")
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        x = z[:, :, None, None]
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class MinibatchStd(nn.Module):
    """Append one channel holding how much the images of a group (of 4, else the whole batch) differ from each
    other (ProGAN, Karras et al. 2018): a discriminator that sees it can reject a generator that draws one image."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        group = self.group_size if n % self.group_size == 0 else n
        spread = x.float().view(group, n // group, c, h, w).std(0, unbiased=False).mean((1, 2, 3))  # one value per group
        return torch.cat([x, spread.to(x.dtype).repeat(group)[:, None, None, None].expand(n, 1, h, w)], 1)


D_NORMS = ("batch", "spectral")
D_CONDITIONINGS = ("concat", "projection")


class Discriminator(nn.Module):
    def __init__(self, frame: Frame, norm: str = "batch", conditioning: str = "concat", minibatch_std: bool = False) -> None:
        super().__init__()
        if norm not in D_NORMS:
            raise ConfigError(f"unknown discriminator norm '{norm}'; choose one of {', '.join(D_NORMS)}")
        if conditioning not in D_CONDITIONINGS:
            raise ConfigError(f"unknown discriminator conditioning '{conditioning}'; choose one of {', '.join(D_CONDITIONINGS)}")
        width, num_classes, extra_layers = frame.width, frame.num_classes, frame.extra_layers
        base, steps = _base_size(frame.size)
        self.num_classes = num_classes
        self.concat_labels = bool(num_classes) and conditioning == "concat"
        batch_norm = norm == "batch"
        layers: list[nn.Module]
        c, layers = frame.channels + (num_classes if self.concat_labels else 0), []
        for i in range(steps):
            out = width * 2**i
            layers += [nn.Conv2d(c, out, 4, 2, 1, bias=i == 0 or not batch_norm)]
            layers += [nn.BatchNorm2d(out)] if i > 0 and batch_norm else []
            layers += [nn.LeakyReLU(0.2, True)]
            c = out
        for _ in range(extra_layers):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=not batch_norm)] + ([nn.BatchNorm2d(c)] if batch_norm else [])
            layers += [nn.LeakyReLU(0.2, True)]
        if minibatch_std:
            layers.append(MinibatchStd())
            c += 1
        layers.append(nn.Conv2d(c, 1, base, 1, 0))
        self.embed: nn.Module | None = None
        if num_classes and not self.concat_labels:
            self.embed = nn.Embedding(num_classes, c)
            nn.init.xavier_uniform_(self.embed.weight)
        if norm == "spectral":
            layers = [nn.utils.parametrizations.spectral_norm(m) if isinstance(m, nn.Conv2d) else m for m in layers]
            if self.embed is not None:
                self.embed = nn.utils.parametrizations.spectral_norm(self.embed)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """One logit per image for ``x`` in [-1, 1]."""
        if self.num_classes and labels is None:
            raise ConfigError("a conditional discriminator needs class labels")
        if self.concat_labels:
            assert labels is not None  # a conditional discriminator raised above
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, planes], 1)
        if self.embed is None:
            return self.net(x).flatten()
        features = self.net[:-1](x)
        return self.net[-1](features).flatten() + (self.embed(labels) * features.sum((2, 3))).sum(1)


class DCGAN(nn.Module):
    """A generator and a discriminator; ``forward(z)`` and ``sample(n)`` give images in [0, 1]."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        latent_dim: int = 64,
        width: int = 64,
        num_classes: int = 0,
        ema_decay: float = 0.0,
        d_norm: str = "batch",
        extra_layers: int = 0,
        d_conditioning: str = "concat",
        d_minibatch_std: bool = False,
        g_conditioning: str = "batchnorm",
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        if h != w:
            raise ConfigError(f"the DCGAN needs square images, got {h}x{w}")
        if extra_layers < 0:
            raise ConfigError(f"extra_layers must be >= 0, got {extra_layers}")
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        self.input_shape, self.latent_dim, self.num_classes, self.ema_decay = (c, h, w), latent_dim, num_classes, ema_decay
        frame = Frame(c, h, width, num_classes, extra_layers)
        self.generator = Generator(frame, latent_dim, g_conditioning)
        self.discriminator = Discriminator(frame, d_norm, d_conditioning, d_minibatch_std)
        self.apply(dcgan_init)
        self.generator_ema: Generator | None = None
        if ema_decay:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged generator towards the trained one (batch-norm statistics are copied as they are)."""
        if self.generator_ema is None:
            return
        avg: Tensor  # parameters, then buffers
        new: Tensor
        for avg, new in zip(self.generator_ema.parameters(), self.generator.parameters()):
            avg.lerp_(new, 1 - self.ema_decay)
        for avg, new in zip(self.generator_ema.buffers(), self.generator.buffers()):
            avg.copy_(new)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device="cpu" if generator is None else generator.device).to(
            device
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [0, 1] from the averaged generator when there is one."""
        generator = self.generator_ema if self.generator_ema is not None else self.generator
        return (generator(z, labels) + 1) / 2

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images in [0, 1] (a conditional model cycles through the classes unless labels are given)."""
        device = next(self.parameters()).device
        if self.num_classes and labels is None:
            labels = torch.arange(n, device=device) % self.num_classes
        was_training = self.training
        self.eval()
        images = self(self.noise(n, generator), labels)
        self.train(was_training)
        return images


@register_model("dcgan", options=DCGAN, fixed=("num_classes", "d_conditioning", "g_conditioning"))
def dcgan(input_shape: tuple[int, int, int] | list[int] = (1, 28, 28), **options: Any) -> DCGAN:
    """DCGAN: transposed-conv/BN/ReLU/tanh generator, strided-conv/LeakyReLU discriminator."""
    return DCGAN(as_shape(input_shape), **options)


@register_model("cdcgan", options=DCGAN)
def cdcgan(input_shape: tuple[int, int, int] | list[int] = (1, 28, 28), num_classes: int = 10, **options: Any) -> DCGAN:
    """Class-conditional DCGAN: in G a label embedding beside z, or class-conditional batch norm; in D one-hot label
    planes beside the image, or a projection."""
    return DCGAN(as_shape(input_shape), num_classes=num_classes, **options)
