"""Evaluation: metrics and the analyses that read run folders."""
