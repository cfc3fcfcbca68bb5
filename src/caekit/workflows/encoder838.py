"""The 8-3-8 encoder problem: n one-hot patterns through a few sigmoid units, trained with the one engine."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from caekit.config import OptimConfig, TrainConfig
from caekit.data.imageset import ImageSet, to_unit
from caekit.models.stacked import StackedAutoencoder, one_hot_patterns
from caekit.runner import fit
from caekit.training.objectives import Reconstruct


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
            lines.append(
                f"{' '.join(str(int(v)) for v in x):<{2 * n}}  {' '.join(f'{v:.2f}' for v in c):<{6 * hidden}}  "
                f"{bits:<{hidden + 1}}  {' '.join(f'{v:.2f}' for v in y)}"
            )
        return "\n".join(lines)

    @property
    def distinct_codes(self) -> int:
        return len({tuple((c > 0.5).tolist()) for c in self.codes})


def encoder_838(
    n: int = 8, hidden: int = 3, epochs: int = 10, steps_per_epoch: int = 400, lr: float = 0.05, seed: int = 0
) -> Encoder838:
    """Train the n-h-n encoder problem (one-hot patterns through ``hidden`` sigmoid units) with the engine.

    An epoch shows each pattern ``steps_per_epoch`` times in shuffled batches of n, so the engine prints a few lines.
    """
    torch.manual_seed(seed)
    images = one_hot_patterns(n)
    data = ImageSet(
        images.repeat(steps_per_epoch, 1, 1, 1),
        torch.arange(n).repeat(steps_per_epoch),
        [str(i) for i in range(n)],
        f"one-hot-{n}",
    )
    model = StackedAutoencoder((1, 1, n), [{"type": "fc", "units": hidden, "activation": "sigmoid"}])
    fitted = fit(
        model,
        Reconstruct("bce"),
        data,
        None,
        TrainConfig(epochs=epochs, batch_size=n, seed=seed, progress=False, device="cpu", channels_last=False),
        OptimConfig(lr=lr, weight_decay=0.0),
    )
    history = fitted.history
    model.eval()
    with torch.no_grad():
        x = to_unit(images)
        codes, outputs = model.encode(x), model(x).flatten(1)
    return Encoder838(x.flatten(1), codes, outputs, history)
