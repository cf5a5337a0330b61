"""One report from several scanners (placeholder until the wt-report branch provides it)."""
