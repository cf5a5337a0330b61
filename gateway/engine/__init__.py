"""Running scans: admission and tasks, one scan's source read to its end, the store and bus
interfaces, the in-process fan-out."""
