"""One report of a scan's (or several scans') findings: fingerprints, merging, baseline, SARIF.

``location`` reads where a finding is and which rule it breaks, from any mapping however
hostile; ``fingerprint`` gives it a stable id; ``merge`` makes several scanners' findings one
list with ``reported_by`` and counts them; ``baseline`` marks them against an earlier report;
``sarif`` writes SARIF 2.1.0. The package knows findings, not HTTP: the routes that serve
reports are in ``gateway.http``.
"""
