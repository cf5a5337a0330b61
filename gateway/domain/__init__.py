"""The vocabulary: scan statuses and records, log events, domain errors."""
