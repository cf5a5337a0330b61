"""The gateway's benchmarks, behind ``bench/run.py`` (which documents what each part measures).

Modules, from the bottom up:

* ``common``: paths, the API prefix, the progress log line.
* ``harness``: the shared SSE harness (``ssebench``), loaded once and typed for what we use.
* ``procs``: starting, probing and stopping processes (HTTP and Redis probes, free ports).
* ``stack``: one mock scanner and one or more gateways (and their Redis) for a scenario.
* ``loadgen``: the harness's C load generator: specs, one synchronised run of several.
* ``stats`` and ``meters``: figures from the loadgens' results and from ``/proc``.
* ``scenarios``: one module per part (fan-out, first event, replay, pipeline,
  collections, replicas, storm).
* ``storm``: the reconnect storm's own subscribers (``bench/storm_subscribers.py`` runs them),
  its publisher, and the tally of what they saw.
* ``profiles``: py-spy and tracemalloc profiles of the gateway under a scenario's load.
* ``report``: the verdicts against the targets and the Markdown report.
* ``cli``: the command line, the order of the parts and the result files.
"""
