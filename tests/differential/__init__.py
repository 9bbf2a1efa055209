"""Differential tests: the current model against the previous release's predictions."""
