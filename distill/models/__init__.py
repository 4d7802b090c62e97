"""Torch models: the WiFo-style teacher, the DU-sized student and their shared building blocks."""
