"""Profiles of the gateway under load: ``pyspy`` records where its CPU goes (``folded``
summarises the recording), ``memory`` compares tracemalloc snapshots with and without idle
streams."""
