"""Data: the sample types shared by dataset and task plugins (defined with the contracts, in
:mod:`microvlm.contracts.samples`, re-exported here), text collation (:mod:`.text`) and the
sources built from recipe entries (:mod:`.sources`)."""

from microvlm.contracts.samples import Box, Example, ImageRef, Sample, Segment, Turn

__all__ = ["Box", "Example", "ImageRef", "Sample", "Segment", "Turn"]
