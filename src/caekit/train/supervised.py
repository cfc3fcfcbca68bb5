"""Objectives of this area (filled in by its issue); they register with caekit.train.objectives.OBJECTIVES."""
