"""Training: the one engine, the objectives it runs, checkpoints and distributed support."""

from caekit.training.engine import Engine
from caekit.training.objectives import OBJECTIVES, Objective, build_objective, register_objective

__all__ = ["OBJECTIVES", "Engine", "Objective", "build_objective", "register_objective"]
