#!/usr/bin/env bash
# Loopback load comparison (a benchmark, not a test): wrk against
#   (a) tagwarden, (b) nginx as a plain reverse proxy, (c) nginx with sub_filter
#       replacing four tracker strings (gzip on: it compresses for clients that ask),
# one worker thread/process each, all in front of the same nginx origin serving a
# ~140 KB corpus page (HTML) and a 140 KB binary asset. Prints requests/s,
# p50/p99 latency and the issue-12 ratios of one run:
#   P1  HTML req/s, (a)/(c), identity to the client            goal >= 1.0
#   P2  the same with Accept-Encoding: gzip (both compress)     goal >= 1.0
#   P4  HTML p99 latency, (a)/(c), identity                     goal <= 1.0
#   P6  asset (non-HTML pass-through) req/s, (a)/(b)            goal >= 1.0
# P3 is `cargo bench --bench rewrite`; P5 and P7 are tests/bench/probe.py.
#
#   tests/bench/wrk.sh            # needs: nginx, wrk (apt-get install -y nginx-light wrk)
#   DURATION=20 CONNECTIONS=32 tests/bench/wrk.sh
#   KEEP=1 ...                    # leave the servers running (ports below) for perf
#
# Only 127.0.0.1 is targeted; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
PAGE=${PAGE:-../shared/corpus/pages/liberation-1.html}
NGINX_GZIP_LEVEL=${NGINX_GZIP_LEVEL:-1}  # nginx's default gzip_comp_level
command -v nginx >/dev/null || { echo "nginx not found: apt-get install -y nginx-light"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk"; exit 1; }

# TAGWARDEN=<binary> benchmarks that binary instead of building ./target/release/tagwarden.
if [ -z "${TAGWARDEN:-}" ]; then cargo build --release --quiet; TAGWARDEN=./target/release/tagwarden; fi
work=$(mktemp -d)
pids=()
cleanup() { [ -n "${KEEP:-}" ] && return; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/root" "$work/logs"
cp "$PAGE" "$work/root/page.html"
head -c 143360 /dev/urandom > "$work/root/asset.bin"
chmod -R a+rX "$work"  # nginx workers run as nobody
O=18480 A=18481 B=18482 C=18483 ADMIN=18489

# The origin is its own nginx process, so each proxy under test is one more
# process beside it (on a 2-core machine an in-process origin would favour nginx).
origin_conf "$work" "$O" "text/html html; application/octet-stream bin;"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/logs/error.log warn;
pid $work/logs/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$O; keepalive 64; }
  server { listen 127.0.0.1:$B;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$C;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Accept-Encoding ""; sub_filter_once off; sub_filter_types text/html;
      gzip on; gzip_comp_level $NGINX_GZIP_LEVEL;
      sub_filter 'googletagmanager.com' 'blocked.invalid'; sub_filter 'google-analytics.com' 'blocked.invalid';
      sub_filter 'connect.facebook.net' 'blocked.invalid'; sub_filter 'doubleclick.net' 'blocked.invalid'; } }
}
CONF
nginx -p "$work" -c "$work/origin.conf" -g 'daemon off;' & pids+=($!)
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
TAGWARDEN_THREADS=1 RUST_LOG=warn "$TAGWARDEN" serve --listen 127.0.0.1:$A --admin 127.0.0.1:$ADMIN \
  --upstream http://127.0.0.1:$O >"$work/logs/tagwarden.log" 2>&1 & pids+=($!)
for port in $O $A $B $C; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/page.html" && break; sleep 0.1; done
done
count() { curl -s "$1" | grep -co 'googletagmanager\|google-analytics\|facebook\|doubleclick' || true; }
for port in $O $A $B $C; do curl -s -o /dev/null -w "port $port: %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$port/page.html"; done
for port in $A $C; do curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w "port $port with Accept-Encoding: gzip: %{size_download} bytes\n" "http://127.0.0.1:$port/page.html"; done
echo "lines with tracker strings: origin=$(count http://127.0.0.1:$O/page.html) tagwarden=$(count http://127.0.0.1:$A/page.html) sub_filter=$(count http://127.0.0.1:$C/page.html)"

run() { # name port path [header] -> prints a line on stderr, echoes "req/s p99-in-ms"
  local out rps p50 p99
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency ${4:+-H "$4"} "http://127.0.0.1:$2$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-30s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99" >&2
  echo "$rps $(ms "$p99")"
}
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; print n }'; }
gz='Accept-Encoding: gzip'
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, one worker each, page $(basename "$PAGE") ($(wc -c <"$PAGE") bytes)" >&2
read -r a_html a_p99 < <(run "tagwarden html" $A /page.html)
read -r b_html _ < <(run "nginx proxy html" $B /page.html)
read -r c_html c_p99 < <(run "nginx sub_filter html" $C /page.html)
read -r a_gz _ < <(run "tagwarden html gzip" $A /page.html "$gz")
read -r c_gz _ < <(run "nginx sub_filter html gzip" $C /page.html "$gz")
read -r a_bin _ < <(run "tagwarden asset" $A /asset.bin)
read -r b_bin _ < <(run "nginx proxy asset" $B /asset.bin)
awk -v a="$a_html" -v c="$c_html" -v b="$b_html" -v ag="$a_gz" -v cg="$c_gz" -v ap="$a_p99" -v cp="$c_p99" \
    -v ab="$a_bin" -v bb="$b_bin" -v lvl="$NGINX_GZIP_LEVEL" 'BEGIN {
  printf "P1 html req/s    tagwarden/sub_filter = %.2f (goal >= 1.0); tagwarden/plain nginx = %.2f\n", a/c, a/b
  printf "P2 html gzip     tagwarden/sub_filter = %.2f (goal >= 1.0; nginx gzip_comp_level %s)\n", ag/cg, lvl
  printf "P4 html p99      tagwarden/sub_filter = %.2f (goal <= 1.0; %.2f ms vs %.2f ms)\n", ap/cp, ap, cp
  printf "P6 asset req/s   tagwarden/plain nginx = %.2f (goal >= 1.0)\n", ab/bb
}'
