"""The building blocks recipes name: backbones, losses, metric losses, samplers, class
weightings and metrics."""
