#!/usr/bin/env bash
# Archive full-text search latency over a large synthetic archive (no SIP,
# no server): crates/store/examples/archive_bench.rs through the real SQLite
# archive backend (hash chain, party rows, FTS5 index), in a temporary
# directory unless --db is given. See bench/README.md.
#
#   bench/archive-search.sh                       # 1,000,000 records, 200 queries of each kind
#   bench/archive-search.sh --records 200000 --queries 500
#   bench/archive-search.sh --db /tmp/a.db        # keep (and reuse: records are added up to --records)
#
# Builds the example in release mode first (cargo): on a shared 2-core
# machine that takes minutes and competes with the measurement; build when
# the machine is free.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
exec cargo run --release -q -p switchboard-store --example archive_bench -- "$@"
