"""Stage 1: training a feature extractor (schedule, checkpoints, augmentation, batches) and
the cache of its artefacts."""
