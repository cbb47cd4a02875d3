#!/usr/bin/env bash
# The Event Hubs path end to end: devhub (AMQP on loopback) -> the official client -> the engine.
# 1. throughput: every message enqueued before the service starts; records/s to count them all;
# 2. delivery latency at a steady publish rate (default 5,000 records/s): the service's
#    signin_radar_eventhubs_delivery_seconds histogram (enqueued at the hub -> counted).
# Variables: RECORDS (200000), RATE (records/s for step 2, 5000), SECONDS (30), PARTITIONS (4).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bins >&2
exec python3 benches/eventhubs/bench.py
