"""Storage at the bottom of core: the checkpoint folder's layout and atomic writes."""
