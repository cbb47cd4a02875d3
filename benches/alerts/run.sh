#!/usr/bin/env bash
# Alert latency benchmark: how long after the record that triggers a finding is read does its
# alert reach Alertmanager and a webhook? signin-radar runs on a synthetic tenant with password
# sprays, paced like a stream; Debian's Alertmanager and a webhook receiver listen on loopback.
# The figure is the service's own histogram signin_radar_alert_delivery_seconds{sink}: from
# the moment the batch holding the triggering record was read to the sink's 2xx answer.
#
#   bash benches/alerts/run.sh
#   RECORDS=400000 RATE=20000 bash benches/alerts/run.sh
#
# Environment: RECORDS (200000), USERS (20000), SPRAYS (40), SPAN (2d), RATE records/s (10000),
# SEED (3). Needs python3 (stdlib) and prometheus-alertmanager.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
cargo build --release --locked --bin signin-radar >/dev/null
exec python3 "$HERE/bench.py" "$ROOT/target/release/signin-radar"
