"""A model family (filled in by its issue); builders register with caekit.models.registry.register_model."""
