#!/usr/bin/env bash
# Throughput and latency of one gateway, with the targets of docs/benchmarks.md printed at the end.
#
#   benches/throughput.sh                       # SQLite (the default, synchronous = FULL)
#   benches/throughput.sh --postgres URL        # PostgreSQL (a database the script may empty)
#
# Environment: IG_BENCH_SECONDS (each wrk run, default 15), IG_BENCH_CONNECTIONS (default
# "1 2 4 8 16 32 64"), IG_BENCH_ENROLMENTS (full load, default 10000), IG_BENCH_BEFORE (complete
# enrolments per second measured before group commit on this machine, for the 2x target; default
# 218, the figure of the issue that asked for it), IG_BENCH_OUT (folder for the figures, default a
# temporary one), IG_BENCH_GATEWAY_BIN (the gateway binary to measure, e.g. one built from an
# earlier commit for a before/after comparison; the load always comes from this checkout's
# simulator), IG_BENCH_PERF=1 (a `perf record -g` of the gateway during the 32-connection wrk
# run, into the figures folder). Needs: a release build (built here), openssl, wrk, python3.
#
# What it does, in order: the RSA bound (`openssl speed -multi $(nproc) rsa2048`); a fresh gateway
# with 10,000 cards; wrk rotating 20,000 distinct sealed envelopes at each connection count; the
# simulator's --eligibility-only load at 32 connections, then paced at half the rate wrk reached at
# 32; a fresh database, then 10,000 complete enrolments at 32 connections. The gateway's CPU time
# per run comes from /proc. Results go to results.csv (for benches/plot.py) and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pg_url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) pg_url="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in openssl wrk python3; do
  command -v "$tool" >/dev/null || { echo "benchmark: $tool is needed" >&2; exit 2; }
done

seconds=${IG_BENCH_SECONDS:-15}
connections=${IG_BENCH_CONNECTIONS:-"1 2 4 8 16 32 64"}
enrolments=${IG_BENCH_ENROLMENTS:-10000}
before=${IG_BENCH_BEFORE:-218}
out=${IG_BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
backend=$([ -n "$pg_url" ] && echo postgres || echo sqlite)

echo "benchmark: building the release binary" >&2
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/issuer-gateway"
gw_bin=${IG_BENCH_GATEWAY_BIN:-$bin}

work=$(mktemp -d)
gw_pid=""
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

echo "benchmark: the RSA-2048 bound (openssl speed -multi $(nproc) rsa2048)" >&2
rsa=$(openssl speed -multi "$(nproc)" -seconds 5 rsa2048 2>/dev/null |
  awk '/^rsa 2048 bits/ { print $(NF-1) }' | tail -1)
rsa=${rsa%.*}
echo "benchmark: RSA-2048 private-key operations: $rsa/s on $(nproc) CPUs" >&2

"$gw_bin" keys generate --out keys >/dev/null
python3 - > cards.csv <<'EOF'
def luhn(body):
    s = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        s += d - 9 if d > 9 else d
    return body + str((10 - s % 10) % 10)
print("pan,exp,status,product_id,phone,email,language")
for i in range(10000):
    phone = f"+4477009{i:05d}" if i % 4 != 3 else ""
    email = f"card{i}@example.com" if i % 4 != 2 else ""
    print(f"{luhn('400000' + f'{i:09d}')},1230,active,VISA_CLASSIC,{phone},{email},en")
EOF
db_url=${pg_url:-"sqlite://./data/gateway.db"}
cat > issuer-gateway.toml <<EOF
[issuer]
id = "BENCHBANK1"
[server]
listen = "127.0.0.1:18443"
[admin]
listen = "127.0.0.1:19090"
[database]
url = "$db_url"
max_connections = 16
[keys]
pkcs7_private_keys = ["keys/issuer-pkcs7-key.pem"]
pan_index_key_file = "keys/pan-index.key"
[outbox]
dir = "./data/outbox"
[log]
level = "warn"
[limits]
sms_per_second = 100000
email_per_second = 100000
EOF
target=http://127.0.0.1:18443
sim=("$bin" simulate --target "$target" --issuer-id BENCHBANK1 --cert keys/issuer-pkcs7-cert.pem --cards cards.csv)

fresh_gateway() {
  [ -n "$gw_pid" ] && { kill -TERM "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; }
  rm -rf data
  if [ -n "$pg_url" ]; then
    python3 - "$pg_url" <<'EOF' || true
import subprocess, sys
subprocess.run(["psql", "-q", sys.argv[1], "-c",
  "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"], check=True, capture_output=True)
EOF
  fi
  "$gw_bin" cards import cards.csv >/dev/null 2>&1
  "$gw_bin" serve > gateway.log 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:19090/health')" \
      2>/dev/null && return 0
    kill -0 "$gw_pid" 2>/dev/null || { cat gateway.log >&2; exit 1; }
    python3 -c "import time; time.sleep(0.1)"
  done
  echo "benchmark: the gateway did not answer /health" >&2; exit 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$gw_pid/stat"; }
# Context switches of all the gateway's threads: a figure that the machine's other load (or a
# virtual machine's stolen time) hardly moves, unlike calls per second.
switches() { cat /proc/"$gw_pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
ticks_per_s=$(getconf CLK_TCK)

fresh_gateway
"${sim[@]}" --count 20000 --write-requests bodies.jsonl 2>/dev/null

echo "connections,calls_per_s,p50_ms,p90_ms,p99_ms,non200,gateway_cpus,switches_per_call" > "$out/results.csv"
for c in $connections; do
  threads=$(( c < 2 ? 1 : 2 ))
  t0=$(cpu_ticks); w0=$(switches)
  perf_pid=""
  if [ "${IG_BENCH_PERF:-0}" = 1 ] && [ "$c" = 32 ]; then
    perf record -g -q -o "$out/perf.data" -p "$gw_pid" -- sleep "$seconds" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  BODIES=bodies.jsonl ISSUER_ID=BENCHBANK1 wrk -t"$threads" -c"$c" -d"${seconds}s" --latency \
    -s "$root/benches/wrk-eligibility.lua" "$target" > "wrk-$c.txt"
  t1=$(cpu_ticks); w1=$(switches)
  [ -n "$perf_pid" ] && wait "$perf_pid"
  rps=$(awk '/^Requests\/sec/ { print $2 }' "wrk-$c.txt")
  p50=$(awk '/^latency p50/ { print $3 }' "wrk-$c.txt")
  p90=$(awk '/^latency p90/ { print $3 }' "wrk-$c.txt")
  p99=$(awk '/^latency p99/ { print $3 }' "wrk-$c.txt")
  bad=$(awk '/^non-200 answers/ { print $3 }' "wrk-$c.txt")
  cpus=$(python3 -c "print(round(($t1 - $t0) / $ticks_per_s / $seconds, 2))")
  spc=$(python3 -c "print(round(($w1 - $w0) / max(1.0, $rps * $seconds), 2))")
  echo "$c,$rps,$p50,$p90,$p99,$bad,$cpus,$spc" >> "$out/results.csv"
  echo "benchmark: wrk, $c connections: $rps calls/s, p50 $p50 ms, p99 $p99 ms, $bad non-200, gateway $cpus CPUs, $spc context switches per call" >&2
done
peak32=$(awk -F, '$1 == 32 { print $2 }' "$out/results.csv")
p99_32=$(awk -F, '$1 == 32 { print $5 }' "$out/results.csv")
bad32=$(awk -F, '$1 == 32 { print $6 }' "$out/results.csv")

echo "benchmark: simulate --eligibility-only, 32 connections" >&2
"${sim[@]}" --count 20000 --concurrency 32 --eligibility-only > sim-eligibility.txt 2>/dev/null || true
sim_rate=$(awk '/^checkCardEligibility/ { print $4 }' sim-eligibility.txt)
sim_p99=$(awk '/^checkCardEligibility/ { print $7 }' sim-eligibility.txt)

half=$(python3 -c "print(round($peak32 / 2))")
echo "benchmark: simulate --eligibility-only paced at $half/s (half of wrk's rate at 32)" >&2
"${sim[@]}" --count $(( half * seconds )) --concurrency 32 --eligibility-only --rate "$half" \
  > sim-half.txt 2>/dev/null || true
half_p50=$(awk '/^checkCardEligibility/ { print $5 }' sim-half.txt)
half_p99=$(awk '/^checkCardEligibility/ { print $7 }' sim-half.txt)
half_errors=$(awk '/^checkCardEligibility/ { print $3 }' sim-half.txt)

echo "benchmark: $enrolments complete enrolments, 32 connections, fresh database" >&2
fresh_gateway
t0=$(cpu_ticks); w0=$(switches); s0=$(date +%s.%N)
"${sim[@]}" --count "$enrolments" --concurrency 32 > sim-full.txt 2>/dev/null || true
t1=$(cpu_ticks); w1=$(switches); s1=$(date +%s.%N)
full_rate=$(awk '/enrolments\/s$/ { print $(NF-1) }' sim-full.txt)
full_errors=$(awk '/^all operations/ { print $4 }' sim-full.txt)
full_cpus=$(python3 -c "print(round(($t1 - $t0) / $ticks_per_s / ($s1 - $s0), 2))")
full_spe=$(python3 -c "print(round(($w1 - $w0) / $enrolments, 1))")
cp wrk-*.txt sim-*.txt "$out/"

verdict() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo met; else echo MISSED; fi; }
ratio=$(python3 -c "print(round($peak32 / $rsa, 2))")
{
  echo
  echo "benchmark ($backend, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)):"
  echo "  RSA-2048 bound (openssl speed -multi $(nproc)): $rsa/s"
  echo "  gateway context switches, wrk, 32 connections: $(awk -F, '$1 == 32 { print $8 }' "$out/results.csv") per call"
  echo "  eligibility, wrk, 32 connections: $peak32 calls/s = $ratio x the bound (target 0.7: $(verdict "$ratio >= 0.7")), p99 $p99_32 ms (target < 40: $(verdict "$p99_32 < 40")), non-200 $bad32 (target 0: $(verdict "$bad32 == 0"))"
  echo "  eligibility, simulate, 32 connections: $sim_rate calls/s, p99 $sim_p99 ms"
  echo "  eligibility at half that rate ($half/s, paced): p50 $half_p50 ms, p99 $half_p99 ms (target < 10: $(verdict "$half_p99 < 10")), errors $half_errors"
  echo "  complete enrolments, 32 connections: $full_rate/s, errors $full_errors, gateway $full_cpus CPUs, $full_spe context switches per enrolment (target 2 x $before = $(( before * 2 )): $(verdict "$full_rate >= 2 * $before"))"
  echo "  figures: $out"
} | tee "$out/summary.txt"
