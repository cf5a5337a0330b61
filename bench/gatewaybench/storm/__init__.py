"""Reconnect storms: thousands of SSE subscribers that resume with ``Last-Event-ID`` and honour
``retry:`` as EventSource does (``subscriber``), run in a few processes (``worker``, started by
``bench/storm_subscribers.py``), driven and summed up by the scenario (``crowd``)."""
