"""The bench's parts, one module each: ``fanout``, ``first_event``, ``replay``, ``pipeline``,
``collections`` and ``replicas``. Each starts its own :class:`~gatewaybench.stack.Stack`,
drives its load and returns one JSON-ready row (``spec`` parses the ``NxRATExSECONDS`` names
they share)."""
