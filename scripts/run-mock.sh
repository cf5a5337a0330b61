#!/usr/bin/env bash
# Starts the bundled mock scanner and the gateway on the embedded defaults, in the foreground.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SCANNER_PORT=${MOCK_SCANNER_PORT:-8001}
GATEWAY_PORT=${XPLOYT_PORT:-8000}

"$PYTHON" -m mock_scanner --port "$SCANNER_PORT" &
scanner=$!
trap 'kill "$scanner" 2>/dev/null; wait "$scanner" 2>/dev/null || true' EXIT INT TERM

TOKEN=$("$PYTHON" -m gateway token --sub demo --ttl 86400)
BASE="http://127.0.0.1:$GATEWAY_PORT"
cat <<TEXT

  Xployt scan gateway demo: mock scanner on :$SCANNER_PORT, gateway on :$GATEWAY_PORT
  Demo page: $BASE/
  A token for the subject "demo" (valid 24 h):

    export TOKEN=$TOKEN

  Start a scan through the mock scanner (use_sse=false simulates it inside the gateway):
    SCAN=\$(curl -s -X POST "$BASE/api/v1/scans/?use_sse=true" \\
      -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"repository_name": "acme/web", "scanner_name": "secret_scanner", "configurations": {}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["scan_id"])')
  Watch it stream:
    curl -N -H "Authorization: Bearer \$TOKEN" "$BASE/api/v1/scans/\$SCAN/stream"
  Or with the command line client:
    .venv/bin/python -m gateway scan --scanner sast_scanner --repo acme/api --sse --watch --url $BASE --token \$TOKEN
  Poll it, then fetch its results:
    curl -s -H "Authorization: Bearer \$TOKEN" "$BASE/api/v1/scans/\$SCAN"
    curl -s -H "Authorization: Bearer \$TOKEN" "$BASE/api/v1/scans/\$SCAN/results"

TEXT
# dev_mode: the demo page at / may hand out development tokens.
XPLOYT_DEV_MODE=1 "$PYTHON" -m gateway --port "$GATEWAY_PORT"
