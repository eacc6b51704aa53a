#!/usr/bin/env bash
# Switchboard vs Kamailio benchmark (SIPp on loopback). See bench/README.md.
#
#   bench/run.sh SCENARIO [--duration SECONDS] [--rate R] [--only kamailio|switchboard] [...]
#   bench/run.sh --help
#
# bench.py starts every server and SIPp in its own process group and keeps
# the live groups listed in $BENCH_PIDFILE; this trap kills whatever is left
# in them if bench.py itself dies or is interrupted.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pidfile="$(mktemp -t switchboard-bench-pids.XXXXXX)"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -s "$pidfile" ]; then
        while read -r pg; do
            [ -n "$pg" ] && kill -TERM -- "-$pg" 2>/dev/null
        done <"$pidfile"
        sleep 1
        while read -r pg; do
            [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null
        done <"$pidfile"
    fi
    rm -f "$pidfile"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

BENCH_PIDFILE="$pidfile" python3 "$here/bench.py" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT TERM HUP
wait "$child"
