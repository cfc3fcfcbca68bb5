"""Corruptions for denoising autoencoders, applied on the fly to float images in [0, 1].

Every function takes an optional ``torch.Generator`` so a corruption can be reproduced exactly (evaluation),
or draws from the global RNG (training, where the engine seeds it). Results are always clipped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from caekit.errors import ConfigError

KINDS = ("gaussian", "salt_pepper", "mask")


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device if generator is None else generator.device).to(
        x.device, x.dtype
    )


def gaussian(x: Tensor, sigma: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma`` (pixel units in [0, 1]), then clipped."""
    device = x.device if generator is None else generator.device
    noise = torch.randn(x.shape, generator=generator, device=device).to(x.device, x.dtype)
    return (x + sigma * noise).clamp_(0, 1)


def salt_and_pepper(x: Tensor, amount: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A fraction ``amount`` of pixels (per channel) set to 0 or 1 with equal chance."""
    u = _uniform(x, generator)
    salt = _uniform(x, generator) < 0.5
    hit = u < amount
    return torch.where(hit, salt.to(x.dtype), x)


def mask(x: Tensor, fraction: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Masking ("dropout") noise: a fraction ``fraction`` of pixels (per channel) set to 0."""
    return torch.where(_uniform(x, generator) < fraction, torch.zeros((), dtype=x.dtype, device=x.device), x)


@dataclass(frozen=True)
class Corruption:
    """One corruption kind with its level: gaussian (sigma), salt_pepper (amount) or mask (fraction)."""

    kind: str = "gaussian"
    level: float = 0.2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown corruption '{self.kind}'; choose one of: {', '.join(KINDS)}")
        if self.kind == "gaussian" and self.level < 0:
            raise ConfigError(f"gaussian sigma must be >= 0, got {self.level}")
        if self.kind != "gaussian" and not 0 <= self.level <= 1:
            raise ConfigError(f"{self.kind} level is a fraction of pixels in [0, 1], got {self.level}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return corrupt(x, self.kind, self.level, generator)

    def apply(self, x: Tensor, level: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
        """This kind of corruption at another level (a float, or a tensor broadcasting over x, e.g. one per image)."""
        return corrupt(x, self.kind, level, generator)

    def __str__(self) -> str:
        name = {"gaussian": "sigma", "salt_pepper": "amount", "mask": "fraction"}[self.kind]
        return f"{self.kind} {name} {self.level:g}"


class OnTheFly:
    """The denoising objectives' noise: one kind at one level, or at a level each image draws from [low, high].

    Training draws from the global RNG (which the engine seeds); ``fixed`` seeds by the batch's content, so the same
    images get the same noise every evaluation and different images different noise.
    """

    def __init__(self, kind: str = "gaussian", level: float | list[float] = 0.3, seed: int = 1234) -> None:
        levels = [float(v) for v in level] if isinstance(level, (list, tuple)) else [float(level)]
        if len(levels) not in (1, 2) or levels[0] > levels[-1]:
            raise ConfigError(f"a noise level is a number or a range [low, high], got {level}")
        corruptions = [Corruption(kind, value) for value in levels]  # validates both ends
        self.levels, self.seed = levels, seed
        self.corruption = corruptions[-1]  # the strongest: what pictures show

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if len(self.levels) == 1:
            return self.corruption(x, generator)
        low, high = self.levels
        device = x.device if generator is None else generator.device
        level = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=generator, device=device).to(x.device, x.dtype)
        return self.corruption.apply(x, level * (high - low) + low, generator)

    def fixed(self, x: Tensor) -> Tensor:
        """Noise that depends only on ``x``: reproducible evaluation."""
        return self(x, seeded(self.seed + int(x.double().sum().item() * 1000) % 2**31, x.device))


def corrupt(x: Tensor, kind: str, level: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Corrupt ``x`` (float in [0, 1]) with one of ``KINDS``."""
    if kind == "gaussian":
        return gaussian(x, level, generator)
    if kind == "salt_pepper":
        return salt_and_pepper(x, level, generator)
    if kind == "mask":
        return mask(x, level, generator)
    raise ConfigError(f"unknown corruption '{kind}'; choose one of: {', '.join(KINDS)}")


def seeded(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for reproducible corruption (the same noisy images every evaluation)."""
    return torch.Generator(device=device).manual_seed(seed)


BINARISE = ("none", "threshold", "dynamic")


def binarise(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """none: grey levels as they are; threshold: x > 0.5; dynamic: a Bernoulli draw with p = x."""
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    device = x.device if generator is None else generator.device
    return (torch.rand(x.shape, generator=generator, device=device).to(x.device) < x).to(x.dtype)
