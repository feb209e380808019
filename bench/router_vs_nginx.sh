#!/usr/bin/env bash
# Throughput and p99 latency through chain-deploy's TrafficRouter, side by
# side with nginx as a weighted reverse proxy and with no proxy at all, all
# driven by wrk against the same two upstreams (a 90/10 split).
#
# Then latency at 50% and 80% of nginx's maximum rate under the open-loop
# load generator (oha), each proxy in turn, round after round.
#
# Usage: bench/router_vs_nginx.sh [seconds per run, default 10] [rounds, default 5]
# Installs wrk and nginx from Debian's packages and oha from crates.io when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
rounds=${2:-5}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in wrk nginx; do
    command -v "$tool" >/dev/null 2>&1 || command -v "/usr/sbin/$tool" >/dev/null 2>&1 \
        || { as_root apt-get update -qq; as_root apt-get install -y -qq "$tool"; }
done
# oha: an open-loop load generator that corrects for coordinated omission.
command -v oha >/dev/null 2>&1 || cargo install --locked oha
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet -p examples --example deploy-service --example traffic-router
bin=target/release/examples
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 100); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2; exit 1
}

blue=$(free_port); green=$(free_port); router=$(free_port); proxy=$(free_port)
BIND=127.0.0.1:$blue "$bin/deploy-service" >/dev/null & pids+=($!)
BIND=127.0.0.1:$green "$bin/deploy-service" >/dev/null & pids+=($!)
wait_port "$blue"; wait_port "$green"

upstreams="blue=http://127.0.0.1:$blue,green=http://127.0.0.1:$green"
"$bin/traffic-router" serve "127.0.0.1:$router" "$upstreams" "blue=90,green=10" >/dev/null & pids+=($!)
# One event loop per thread, two threads: nginx's model, two workers.
router_threads=$(free_port)
"$bin/traffic-router" serve "127.0.0.1:$router_threads" "$upstreams" "blue=90,green=10" 2 >/dev/null & pids+=($!)
wait_port "$router"; wait_port "$router_threads"

cat >"$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream app {
        server 127.0.0.1:$blue weight=9;
        server 127.0.0.1:$green weight=1;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$proxy;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
"$nginx_bin" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_port "$proxy"

# CPU time (user and kernel clock ticks) of a process and its children
# that are still running: the router is one process, nginx a master and
# its workers.
cpu_ticks() { # PID
    local pid files=()
    for pid in "$1" $(pgrep -P "$1" || true); do files+=("/proc/$pid/stat"); done
    awk '{user += $14; kernel += $15} END {print user, kernel}' "${files[@]}"
}
# One measurement, tab-separated: requests/s, p50, p99, requests, and the
# proxy's user and kernel CPU ticks over the measured run.
measure() { # PORT PID
    local port=$1 pid=$2 out before after
    # Warm up connections and caches, then measure.
    wrk -t2 -c64 -d2s "http://127.0.0.1:$port/" >/dev/null
    before=$(cpu_ticks "$pid")
    out=$(wrk -t2 -c64 -d"${duration}s" --latency "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
        "$(awk '$1=="50%" {print $2}' <<<"$out")" \
        "$(awk '$1=="99%" {print $2}' <<<"$out")" \
        "$(awk '/requests in/ {print $1}' <<<"$out")" \
        "$(( ${after% *} - ${before% *} ))" "$(( ${after#* } - ${before#* } ))"
}
# The targets take turns, round after round, so a slow spell of this shared
# machine hits them alike.
keys=(upstream router router_threads nginx)
names=("upstream directly (no proxy)" "TrafficRouter (90/10, work-stealing runtime)"
    "TrafficRouter (90/10, 2 event loops)"
    "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///') (90/10, keepalive, 2 workers)")
ports=("$blue" "$router" "$router_threads" "$proxy")
# The process whose CPU is counted for each target.
procs=("${pids[0]}" "${pids[2]}" "${pids[3]}" "${pids[4]}")
for round in $(seq 1 "$rounds"); do
    for index in "${!ports[@]}"; do
        measure "${ports[$index]}" "${procs[$index]}" >>"$work/target-$index"
    done
done

# Latency at fixed request rates, open loop: oha sends at the rate whether
# or not earlier requests have answered, and with --latency-correction
# measures each request from when it should have been sent, so a stall is
# not hidden by the requests it delayed (coordinated omission).
#
# The rates are 50% and 80% of nginx's maximum *under oha*: oha spends more
# CPU per request than wrk and shares these cores with the proxies, so a
# fraction of wrk's maximum would measure the load generator's queue. First
# nginx's maximum with oha closed loop (median over the rounds), then each
# load with the proxies taking turns, round after round.
nginx_index=$((${#keys[@]} - 1))
oha -z 2s -c 64 --no-tui --output-format json "http://127.0.0.1:$proxy/" >/dev/null
for round in $(seq 1 "$rounds"); do
    oha -z "${duration}s" -c 64 --no-tui --output-format json "http://127.0.0.1:$proxy/" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["requestsPerSec"])' \
        >>"$work/nginx-oha-max"
done
nginx_max=$(sort -n "$work/nginx-oha-max" | sed -n "$(((rounds + 1) / 2))p")
for load in 50 80; do
    rate=$(python3 -c "print(int(float('$nginx_max') * $load / 100))")
    for round in $(seq 1 "$rounds"); do
        for index in 1 2 "$nginx_index"; do
            oha -z "${duration}s" -c 64 -q "$rate" --latency-correction --no-tui --output-format json \
                "http://127.0.0.1:${ports[$index]}/" >"$work/open-$load-$index-$round.json"
        done
    done
done

mkdir -p target/bench-report
python3 - "$work" "$duration" "$rounds" "$(getconf CLK_TCK)" "${keys[@]}" -- "${names[@]}" \
    >target/bench-report/router.json <<'PY'
import json, sys
work, seconds, rounds, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rest = sys.argv[5:]
keys, names = rest[:rest.index("--")], rest[rest.index("--") + 1:]
targets = []
for index, (key, name) in enumerate(zip(keys, names)):
    rounds_ = []
    for line in open(f"{work}/target-{index}"):
        rps, p50, p99, requests, user, kernel = line.rstrip("\n").split("\t")
        requests = int(requests)
        rounds_.append({"rps": float(rps), "p50": p50, "p99": p99, "requests": requests,
                        "user_us_per_request": int(user) / tick * 1e6 / requests,
                        "kernel_us_per_request": int(kernel) / tick * 1e6 / requests})
    targets.append({"key": key, "name": name, "rounds": rounds_})
open_loop = []
for load in (50, 80):
    for index, (key, name) in enumerate(zip(keys, names)):
        runs = []
        for round_ in range(1, rounds + 1):
            try:
                runs.append(json.load(open(f"{work}/open-{load}-{index}-{round_}.json")))
            except FileNotFoundError:
                continue
        if not runs:
            continue
        # Each figure is the median over the rounds, with its range.
        def over_rounds(read):
            values = sorted(read(run) for run in runs)
            return {"median": values[len(values) // 2], "min": values[0], "max": values[-1]}
        percentile = lambda name: over_rounds(lambda run: run["latencyPercentiles"][name] * 1e3)
        open_loop.append({"load_percent": load, "key": key, "name": name, "rounds": len(runs),
                          "requests_per_second": over_rounds(lambda run: run["summary"]["requestsPerSec"])["median"],
                          "success_rate": min(run["summary"]["successRate"] for run in runs),
                          "p50_ms": percentile("p50"), "p99_ms": percentile("p99"),
                          "p99_9_ms": percentile("p99.9")})
nginx_oha_max = sorted(float(line) for line in open(f"{work}/nginx-oha-max"))
json.dump({"seconds": seconds, "rounds": rounds, "targets": targets, "open_loop": open_loop,
           "nginx_oha_max_rps": nginx_oha_max},
          sys.stdout, indent=1)
PY
echo "wrote target/bench-report/router.json"
