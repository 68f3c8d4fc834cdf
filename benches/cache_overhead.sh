#!/usr/bin/env bash
# Cache overhead and warm reruns of the response cache: a 10,000-row query through the
# release `blossom` binary against the release simulator at 0 ms latency, with the cache
# off, cold (a fresh directory) and warm (the same directory again), three runs each,
# for pack_rows 1 and the default (16). Prints wall time, requests and output lines.
# Needs release binaries first: cargo build --release --bins. Uses curl, bc, python3.
set -u
cd "$(dirname "$0")/.."
BIN=target/release
OUT=$(mktemp -d)
$BIN/blossom-sim --port 18787 --latency-ms 0 > "$OUT/sim.log" 2>&1 &
SIM=$!
sleep 1
Q="SELECT id, sentiment(t) AS s FROM (SELECT v AS id, 'row ' || v || ' is great' AS t FROM generate_series(1, 10000) AS g(v)) ORDER BY id"
run() { # $1 = cache, $2 = pack_rows
  local before after start end
  before=$(curl -s http://127.0.0.1:18787/sim/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  start=$(date +%s.%N)
  BLOSSOM_CACHE="$1" BLOSSOM_PACK_ROWS="$2" $BIN/blossom --base-url http://127.0.0.1:18787/v1 --model x -q --format csv -c "$Q" > "$OUT/out_$2.csv"
  end=$(date +%s.%N)
  after=$(curl -s http://127.0.0.1:18787/sim/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  printf "%.2f s, %d requests, %d lines\n" "$(echo "$end - $start" | bc)" "$((after - before))" "$(wc -l < "$OUT/out_$2.csv")"
}
for pack in 1 16; do
  for i in 1 2 3; do
    echo "pack_rows=$pack off run $i: $(run off $pack)"
  done
  for i in 1 2 3; do
    dir=$(mktemp -d)
    echo "pack_rows=$pack cold run $i: $(run $dir $pack)"
    echo "pack_rows=$pack warm run $i: $(run $dir $pack)"
  done
done
kill $SIM
