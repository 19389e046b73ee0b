"""Bundled scenario files (YAML): evidence, strategies, ready-made scenarios."""
