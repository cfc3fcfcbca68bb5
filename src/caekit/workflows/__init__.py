"""Workflows that compose the floors below: the Full + Sample comparison, greedy stacking, the 8-3-8 encoder, the judge
classifier, and a trained model's verbs on files and splits."""
