"""Data types shared by dataset plugins and task plugins (neither imports the other)."""

from microvlm.data.samples import Box, Example, ImageRef, Sample, Segment, Turn

__all__ = ["Box", "Example", "ImageRef", "Sample", "Segment", "Turn"]
