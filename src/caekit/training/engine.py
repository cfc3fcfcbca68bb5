"""The one training loop. Every model trains here; an ``Objective`` says what a step means.

The engine owns devices, memory format, autocast, optimisers, schedules, gradient clipping, early stopping,
DDP, progress, metrics and checkpoints, and knows nothing of which model it trains.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from caekit.checkpoint import read_checkpoint, restore, save_checkpoint
from caekit.config import OptimConfig, TrainConfig
from caekit.data.imageset import Batches, ImageSet, to_unit
from caekit.device import resolve_device
from caekit.errors import CheckpointError, ConfigError, TrainingDiverged
from caekit.runs import RunFolder
from caekit.training import cpu, distributed
from caekit.training.callbacks import Callback
from caekit.training.objectives import Objective, PassThrough


def build_optimizer(params: Any, config: OptimConfig) -> torch.optim.Optimizer:
    """Adam or SGD with the settings of a resolved ``OptimConfig`` (every field filled)."""
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)  # type: ignore[arg-type]
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)  # type: ignore[arg-type]


SCHEDULE_FIELDS = ("scheduler", "step_size", "gamma")


def schedule_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings a restored scheduler state depends on (cosine and warm-up: also the number of epochs)."""
    fields = [*SCHEDULE_FIELDS, *(["warmup_epochs"] if config.warmup_epochs else [])]
    fields += ["epochs"] if config.scheduler == "cosine" or config.warmup_epochs else []
    return {field: getattr(config, field) for field in fields}


def lr_factor(
    epoch: int, hold: int, warmup: int, epochs: int, scheduler: str, step_size: int, gamma: float, scale: float = 1.0
) -> float:
    """The learning-rate multiplier of one parameter group in ``epoch``: 0 while the group is held (a linear-probe
    start), then a linear warm-up over ``warmup`` epochs, then the schedule (cosine to zero at the last epoch, or
    steps), times the group's ``scale`` (layer-wise decay)."""
    start = epoch - hold
    if start < 0:
        return 0.0
    if start < warmup:
        return scale * (start + 1) / warmup
    done = start - warmup
    if scheduler == "cosine":
        return scale * 0.5 * (1 + math.cos(math.pi * done / max(1, epochs - hold - warmup)))
    if scheduler == "step":
        return scale * gamma ** (done // step_size)
    return scale


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    groups = optimizer.param_groups
    if config.warmup_epochs or any(g.get("hold_epochs", 0) or g.get("lr_scale", 1.0) != 1.0 for g in groups):
        if config.scheduler == "plateau":
            raise ConfigError("warm-up, held or scaled parameter groups need a fixed schedule: none, cosine or step")
        factors: list[Callable[[int], float]] = [
            partial(
                lr_factor,
                hold=int(g.get("hold_epochs", 0)),
                warmup=config.warmup_epochs,
                epochs=config.epochs,
                scheduler=config.scheduler,
                step_size=config.step_size,
                gamma=config.gamma,
                scale=float(g.get("lr_scale", 1.0)),
            )
            for g in groups
        ]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.gamma, patience=max(1, (config.patience or 4) // 2)
        )
    return None


def format_row(row: dict[str, float], epochs: int) -> str:
    """One line per epoch: the losses and metrics, then speed."""
    parts = [f"epoch {int(row['epoch'])}/{epochs}"]
    parts += [f"{k} {v:.4g}" for k, v in row.items() if k.startswith(("train_", "val_"))]
    parts.append(f"{row['images_per_s']:.0f} img/s, {row['seconds']:.1f} s")
    return "  ".join(parts)


class Engine:
    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        train: TrainConfig,
        optim: OptimConfig,
        run: RunFolder | None = None,
        meta: dict[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
        augment: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.config, self.objective, self.run, self.meta = train, objective, run, dict(meta or {})
        self.callbacks = list(callbacks)
        self.augment = augment  # uint8 training batches in, uint8 out (caekit.data.augment)
        self.device = resolve_device(train.device)
        self.dist = distributed.setup(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self._tuned = cpu.tuning_wanted(train.cpu_tuning)
        self._cudnn_benchmark = torch.backends.cudnn.benchmark
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            if self._tuned:
                torch.backends.cudnn.benchmark = True
        elif self._tuned:
            cpu.tune(retain_memory=train.retain_memory)
        self.channels_last = train.channels_last if train.channels_last is not None else True
        self.amp = train.amp if train.amp is not None else (self.device.type == "cuda" and torch.cuda.is_bf16_supported())

        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optim = optim.resolved(objective.optimizer_defaults())
        self.optimizers = {
            name: build_optimizer(params, self.optim) for name, params in objective.param_groups(self.model).items()
        }
        self.schedulers = {name: build_scheduler(opt, train) for name, opt in self.optimizers.items()}
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(
                PassThrough(self.model), device_ids=ids, find_unused_parameters=objective.uses_part_of_model
            )
        if train.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]

    # ------------------------------------------------------------------------------------- batches

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Move a batch (uint8 images travel, 4x smaller) and turn ``image`` into float in [0, 1]."""
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        image = to_unit(out["image"])
        out["image"] = image.contiguous(memory_format=torch.channels_last) if self.channels_last and image.dim() == 4 else image
        return out

    def batches(self, data: ImageSet, shuffle: bool, batch_size: int | None = None) -> Batches:
        tensors = data.tensors()
        in_memory = {k: v for k, v in tensors.items() if isinstance(v, Tensor)}
        if self.device.type == "cuda" and len(in_memory) == len(tensors):  # a stored set is gathered batch by batch
            size = sum(t.numel() * t.element_size() for t in in_memory.values())
            free, _ = torch.cuda.mem_get_info(self.device)
            if size < free // 4:  # the uint8 set lives on the GPU: batches are gathered there, no copies per step
                tensors = {k: v.to(self.device) for k, v in in_memory.items()}
            else:  # pinned host memory, so the per-batch copies can overlap compute
                tensors = {k: v.pin_memory() for k, v in in_memory.items()}
        weights = self.objective.sample_weights(data) if shuffle else None
        return Batches(
            tensors,
            batch_size or self.config.batch_size,
            shuffle=shuffle,
            seed=self.config.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            weights=weights,
            pad=shuffle,
        )

    # ------------------------------------------------------------------------------------- steps

    def _step(self, name: str, loss: Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):
            loss.backward()
        if self.config.grad_clip:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        optimizer.step()

    def train_epoch(self, batches: Batches, epoch: int) -> dict[str, float]:
        self.net.train()
        sums: dict[str, Tensor] = {}
        seen, start = 0, time.perf_counter()
        bar = tqdm(
            total=len(batches),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="batch",
            leave=False,
            disable=not (self.config.progress and self.dist.is_main and sys.stderr.isatty()),
            dynamic_ncols=True,
        )
        for i, batch in enumerate(batches):
            if self.augment is not None:
                batch = {**batch, "image": self.augment(batch["image"])}
            batch = self.to_device(batch)
            with self.autocast():
                metrics = self.objective.train_step(self.net, batch, self._step)
            n = len(batch["image"])
            seen += n
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0) + value.detach().float() * n
            if i % 10 == 0 or i == len(batches) - 1:
                loss = sums["loss"].item() / seen
                if not math.isfinite(loss):
                    bar.close()
                    raise TrainingDiverged(
                        f"the loss became {loss} in epoch {epoch + 1}, step {i + 1}; lower the learning rate "
                        f"(now {self.optimizers[next(iter(self.optimizers))].param_groups[0]['lr']:g}) or add grad_clip; "
                        "the last good checkpoint is kept"
                    )
                bar.set_postfix(loss=f"{loss:.4g}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
            bar.update()
        bar.close()
        seconds = time.perf_counter() - start
        totals = distributed.sum_across(torch.stack([*sums.values(), torch.tensor(float(seen), device=self.device)]))
        result = {f"train_{key}": (totals[j] / totals[-1]).item() for j, key in enumerate(sums)}
        result["images_per_s"] = totals[-1].item() / seconds
        result["seconds"] = seconds
        return result

    @torch.no_grad()
    def evaluate(self, data: ImageSet, batch_size: int | None = None) -> dict[str, float]:
        """Mean of the objective's per-image validation values over a whole split (all ranks together)."""
        self.model.eval()
        sums: dict[str, Tensor] = {}
        count = 0
        for batch in self.batches(data, shuffle=False, batch_size=batch_size or max(256, self.config.batch_size)):
            batch = self.to_device(batch)
            with self.autocast():
                values = self.objective.evaluate(self.model, batch)
            for key, value in values.items():
                sums[key] = sums.get(key, 0) + value.float().sum()
            count += len(batch["image"])
        totals = distributed.sum_across(torch.stack([*sums.values(), torch.tensor(float(count), device=self.device)]))
        return {key: (totals[j] / totals[-1]).item() for j, key in enumerate(sums)}

    # ------------------------------------------------------------------------------------- the loop

    def fit(self, train: ImageSet, val: ImageSet | None = None, resume: bool = False) -> list[dict[str, float]]:
        cfg = self.config
        torch.manual_seed(cfg.seed + self.dist.rank)
        state: dict[str, Any] = {"epoch": 0, "history": [], "bad_epochs": 0}
        if resume:
            state = self._resume()
        batches = self.batches(train, shuffle=True)
        monitor = self.objective.monitor
        best = min(map(self.objective.rank, state["history"]), default=None)  # a resumed run's best so far
        for callback in self.callbacks:
            callback.on_train_start(cfg.epochs)
        for epoch in range(state["epoch"], cfg.epochs):
            for callback in self.callbacks:
                callback.on_epoch_start(epoch + 1)
            batches.set_epoch(epoch)
            row: dict[str, float] = {"epoch": epoch + 1, **self.train_epoch(batches, epoch)}
            if val is not None and len(val):
                row.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            row["lr"] = next(iter(self.optimizers.values())).param_groups[0]["lr"]
            state["history"].append(row)
            rank = self.objective.rank(row)
            improved = best is None or rank < best
            best = rank if improved else best
            state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
            for scheduler in self.schedulers.values():
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(rank[0])
                elif scheduler is not None:
                    scheduler.step()
            state["epoch"] = epoch + 1
            self._save(state, improved)
            if self.dist.is_main and cfg.verbose:
                tqdm.write(format_row(row, cfg.epochs))
            for callback in self.callbacks:
                callback.on_epoch_end(epoch + 1, row)
            if cfg.patience and state["bad_epochs"] >= cfg.patience:
                if self.dist.is_main:
                    tqdm.write(f"early stop after epoch {epoch + 1}: {monitor} has not improved for {cfg.patience} epochs")
                break
        distributed.barrier()  # the other ranks read rank 0's best checkpoint next: wait until it is written
        for callback in self.callbacks:
            callback.on_train_end(state["history"])
        return state["history"]

    # ------------------------------------------------------------------------------------- checkpoints

    def checkpoint_meta(self, state: dict[str, Any]) -> dict[str, Any]:
        schedulers = {k: s.state_dict() for k, s in self.schedulers.items() if s is not None}
        return {
            **self.meta,
            "train_state": state,
            "schedulers": schedulers,
            "objective_state": self.objective.state_dict(),
            "optim": self.optim.model_dump(mode="json"),
            "schedule": schedule_settings(self.config),
        }

    def _save(self, state: dict[str, Any], improved: bool) -> None:
        if self.run is None:
            return
        rng_states = distributed.gather_cpu(torch.get_rng_state())  # every rank's own stream, so resume keeps them apart
        if not self.dist.is_main:
            return
        meta = self.checkpoint_meta(state)
        extra = {"rng_cpu": rng_states[0], **{f"rng_cpu.{rank}": s for rank, s in enumerate(rng_states) if rank}}
        save_checkpoint(self.run.checkpoint("last"), self.model, meta, self.optimizers, extra)
        if improved:
            save_checkpoint(self.run.checkpoint("best"), self.model, meta)
        # after the checkpoint, so that metrics.csv never holds an epoch that a resume would train again
        self.run.write_metrics(state["history"])
        for callback in self.callbacks:
            callback.on_checkpoint(self.run.checkpoint("last"), best=False)
            if improved:
                callback.on_checkpoint(self.run.checkpoint("best"), best=True)

    def _resume(self) -> dict[str, Any]:
        if self.run is None:
            raise CheckpointError("resuming needs a run folder")
        if self.dist.is_main:
            self.run.remove_stale_temporaries()
        if not self.run.checkpoint("last").is_file():  # killed before its first epoch ended: start it afresh
            if self.dist.is_main and self.config.verbose:
                tqdm.write(f"{self.run.path} has no checkpoint yet: training it from epoch 1")
            return {"epoch": 0, "history": [], "bad_epochs": 0}
        tensors, meta = read_checkpoint(self.run.checkpoint("last"))
        state = meta.get("train_state")
        if not (isinstance(state, dict) and isinstance(state.get("epoch"), int) and isinstance(state.get("history"), list)):
            raise CheckpointError(
                f"'{self.run.checkpoint('last')}': its train_state is missing or malformed; the run cannot be "
                "resumed (start a new run, or train from its best checkpoint with model.args)"
            )
        changed_schedule = {
            k: (v, meta["schedule"][k])
            for k, v in schedule_settings(self.config).items()
            if "schedule" in meta and k in meta["schedule"] and meta["schedule"][k] != v
        }
        if changed_schedule:
            field, (new, old) = next(iter(changed_schedule.items()))
            raise ConfigError(
                f"train.{field} is {new} here but {old} in the run being resumed: a restored learning-rate "
                "schedule cannot change it; resume with the old value or start a new run"
            )
        extra = restore(tensors, meta, self.model, self.optimizers)
        for name, scheduler in self.schedulers.items():
            if scheduler is not None and name in meta.get("schedulers", {}):
                scheduler.load_state_dict(meta["schedulers"][name])
        if "optim" in meta:
            self._apply_changed_optim(OptimConfig.model_validate(meta["optim"]))
        self.objective.load_state_dict(meta.get("objective_state", {}))
        rng = extra.get(f"rng_cpu.{self.dist.rank}" if self.dist.rank else "rng_cpu")
        if rng is not None:
            torch.set_rng_state(rng)
        if self.dist.is_main and self.config.verbose:
            tqdm.write(f"resumed {self.run.path} after epoch {state['epoch']}")
        return meta["train_state"]

    def _apply_changed_optim(self, old: OptimConfig) -> None:
        """Settings changed on resume (``--set optim.lr=...``) replace the restored ones, so the run trains as its
        config.yaml says; a learning rate is rescaled, so a schedule goes on from where it was at the new level."""
        if old.name != self.optim.name:
            raise ConfigError(
                f"optim.name is {self.optim.name} here but {old.name} in the run being resumed: its "
                "optimiser state cannot be restored into another optimiser; start a new run"
            )
        for name, optimizer in self.optimizers.items():
            scheduler = self.schedulers.get(name)
            for i, group in enumerate(optimizer.param_groups):
                if old.lr != self.optim.lr:
                    ratio = self.optim.lr / old.lr  # type: ignore[operator]
                    group["lr"] *= ratio
                    if "initial_lr" in group:
                        group["initial_lr"] *= ratio
                    if scheduler is not None and hasattr(scheduler, "base_lrs"):
                        scheduler.base_lrs[i] *= ratio
                for key in ("betas", "weight_decay", "momentum"):
                    before, after = getattr(old, key), getattr(self.optim, key)
                    if key in group and before != after and _same(group[key], before):
                        group[key] = tuple(after) if key == "betas" else after

    def close(self) -> None:
        """Close the callbacks (a tracker's run ends even when training did not) and undo the process settings that
        can be undone."""
        for callback in self.callbacks:
            callback.close()
        if self._tuned:
            torch.backends.cudnn.benchmark = self._cudnn_benchmark
            if self.device.type == "cpu":
                cpu.untune()
            self._tuned = False


def _same(value: Any, setting: Any) -> bool:
    """A restored group's value is the run's setting (not a group of its own, such as L2-SP's zero weight decay)."""
    return (tuple(value) == tuple(setting)) if isinstance(setting, (list, tuple)) else value == setting
