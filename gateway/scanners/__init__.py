"""Reading scanners: the upstream call, its framing and messages, progress and findings."""
