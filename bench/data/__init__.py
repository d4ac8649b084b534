"""Datasets: specs, readers, the embedded synthetic generator, caching and splits."""
