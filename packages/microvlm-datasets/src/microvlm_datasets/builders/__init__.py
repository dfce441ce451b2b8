"""Dataset builders: each reads one dataset's real files and yields :class:`microvlm.data.Sample`."""
