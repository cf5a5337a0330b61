"""The report: ``verdicts`` (the targets of docs/BENCHMARKS.md against the figures),
``markdown`` and ``replicas_md`` (the Markdown file), ``text`` (how a figure is printed)."""
