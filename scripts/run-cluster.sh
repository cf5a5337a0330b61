#!/usr/bin/env bash
# Starts a local Redis, the bundled mock scanner and two gateway replicas sharing that Redis
# (backend: redis), in the foreground. Ctrl-C stops all four.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
REDIS_PORT=${REDIS_PORT:-6390}
SCANNER_PORT=${MOCK_SCANNER_PORT:-8001}
GATEWAY_PORTS=(8000 8002)

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run-cluster: $tool is not installed. On Debian or Ubuntu: apt-get install redis-server" >&2
        exit 1
    fi
done
for port in "$REDIS_PORT" "$SCANNER_PORT" "${GATEWAY_PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "run-cluster: something already listens on 127.0.0.1:$port; stop it first" >&2
        exit 1
    fi
done

# Each process runs in a session of its own (setsid, where there is one), so Ctrl-C reaches
# only this script, whose trap signals each process once: a second signal would cut the
# gateway's graceful shutdown short.
SETSID=$(command -v setsid || true)
gateways=() scanner=() redis=()
# stop_all SIGNAL PID...: signal each process once, then wait for them.
stop_all() {
    local signal=$1
    shift
    (($#)) || return 0
    kill -s "$signal" "$@" 2>/dev/null || true
    wait "$@" 2>/dev/null || true
}
stop() {
    trap - EXIT
    trap '' INT TERM  # a second Ctrl-C must not cut the cleanup short
    echo "run-cluster: stopping the gateways, the mock scanner and Redis" >&2
    # First, and with SIGINT: stopped at once (SIGTERM would drain their running scans), they
    # write their scans' last events to Redis.
    stop_all INT "${gateways[@]}"
    stop_all TERM "${scanner[@]}"
    stop_all TERM "${redis[@]}"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for NAME PID COMMAND...: until COMMAND succeeds, at most 30 s, while PID runs.
wait_for() {
    local name=$1 pid=$2
    shift 2
    for _ in $(seq 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run-cluster: $name exited while starting (its output is above)" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "run-cluster: $name did not answer within 30 s" >&2
    exit 1
}
answers() {  # URL: a 2xx answer, asked directly (no proxy from the environment)
    "$PYTHON" -c 'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=1)' "$1"
}

mkdir -p var/redis
$SETSID redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir ./var/redis \
    --save "" --appendonly yes --daemonize no &
redis=($!)
wait_for "redis-server on :$REDIS_PORT" "${redis[0]}" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping

$SETSID "$PYTHON" -m mock_scanner --port "$SCANNER_PORT" &
scanner=($!)

export XPLOYT_BACKEND=redis XPLOYT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" XPLOYT_DEV_MODE=1
for kind in secret sast llm dast; do
    export "XPLOYT_SCANNER_${kind^^}_SCANNER=http://127.0.0.1:$SCANNER_PORT/scanners/${kind}_scanner/scan"
done
# Both replicas read the same config and environment, so they share the JWT secret
# (XPLOYT_JWT_SECRET when set, else the development one) and every token works on both.
for port in "${GATEWAY_PORTS[@]}"; do
    $SETSID "$PYTHON" -m gateway --port "$port" &
    gateways+=($!)
done

wait_for "the mock scanner on :$SCANNER_PORT" "${scanner[0]}" answers "http://127.0.0.1:$SCANNER_PORT/healthz"
for i in "${!GATEWAY_PORTS[@]}"; do
    port=${GATEWAY_PORTS[$i]}
    wait_for "the gateway on :$port" "${gateways[$i]}" answers "http://127.0.0.1:$port/healthz"
done

TOKEN=$("$PYTHON" -m gateway token --sub demo --ttl 86400)
A="http://127.0.0.1:${GATEWAY_PORTS[0]}"
B="http://127.0.0.1:${GATEWAY_PORTS[1]}"
cat <<TEXT

  Xployt scan gateway cluster: Redis on :$REDIS_PORT (data in var/redis), mock scanner on
  :$SCANNER_PORT, gateway replicas on :${GATEWAY_PORTS[0]} (pid ${gateways[0]}) and :${GATEWAY_PORTS[1]} (pid ${gateways[1]}).
  Demo page on either: $A/ or $B/
  A token for the subject "demo" (valid 24 h), good on both replicas:

    export TOKEN=$TOKEN

  Start a slow scan (about 40 s) on :${GATEWAY_PORTS[0]}:
    SCAN=\$(curl -s -X POST "$A/api/v1/scans/?use_sse=true" \\
      -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"repository_name": "acme/web", "scanner_name": "secret_scanner", "configurations": {"step_delay": 2, "steps": 20}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["scan_id"])')
  Stream it from :${GATEWAY_PORTS[1]}; after a few events press Ctrl-C and note the last id:
    curl -N -H "Authorization: Bearer \$TOKEN" "$B/api/v1/scans/\$SCAN/stream"
  Resume on :${GATEWAY_PORTS[0]} from that id (here 5): the events after it, no gap, no duplicate:
    curl -N -H "Last-Event-ID: 5" -H "Authorization: Bearer \$TOKEN" "$A/api/v1/scans/\$SCAN/stream"
  Both replicas answer for it:
    curl -s -H "Authorization: Bearer \$TOKEN" "$B/api/v1/scans/\$SCAN"
    curl -s -H "Authorization: Bearer \$TOKEN" "$A/api/v1/scans/\$SCAN/results"
  A replica that dies: start another scan on :${GATEWAY_PORTS[0]}, stream it from :${GATEWAY_PORTS[1]}, then
    kill -9 ${gateways[0]}
  and within about 20 s (redis.lease_seconds, then a sweep) the stream on :${GATEWAY_PORTS[1]} ends
  failed: "interrupted: replica lost".
  A replica stopped as a deploy stops it drains instead: after
    kill -TERM ${gateways[0]}
  :${GATEWAY_PORTS[0]}/readyz answers 503, its streams are told to reconnect (to :${GATEWAY_PORTS[1]}), its running
  scans run to their end, then it exits.

TEXT
wait
