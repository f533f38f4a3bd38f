#!/usr/bin/env bash
# Load and soak (a bounded script, not a test): tagwarden (release build) in front of
# an nginx origin serving the corpus pages and a binary asset, with the vetted vendor
# (an nginx TLS "static.zdassets.com" with a throwaway CA, reached through
# `[vendors] resolve`), driven by wrk with a mixed load (tests/load/mix.lua: HTML
# pages, an asset, the vendor's JavaScript on the first-party path, CSP reports)
# while the rules are swapped between two complete trees and reloaded every second.
#
#   tests/load/soak.sh            # 600 s; needs nginx, wrk, openssl (apt-get install -y nginx-light wrk)
#   tests/load/soak.sh 60         # a short run
#   CONNECTIONS=64 THREADS=2 tests/load/soak.sh 120
#
# Reports requests/s, p50/p99, non-2xx responses and socket errors (any read error, and
# any close-delimited response, is a failure), the number of
# rule reloads (tagwarden_rules_reloads_total), responses served on partial rules
# (see mix.lua: each HTML response's CSP names which rule tree it was built from,
# and it must be one whole tree) and tagwarden's RSS (sampled every 5 s:
# start/max/end). Exits non-zero when a goal is missed: any failed request, any
# response on partial rules, fewer reloads than seconds/2, or RSS at the end more
# than 64 MiB above the RSS after warm-up.
#
# How the rules are swapped: the rules path is a symlink to rules-a or rules-b,
# replaced by rename (atomic, like a Kubernetes ConfigMap's ..data swap), then
# SIGHUP; the 2 s poller sees the changes too.
#
# Only 127.0.0.1 is targeted; every run is bounded by SECONDS.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
SECONDS_TO_RUN=${1:-600}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
CORPUS=${CORPUS:-../shared/corpus/pages}
command -v nginx >/dev/null || { echo "nginx not found: apt-get install -y nginx-light"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk"; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && { echo "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root/web_widget" "$work/logs"
O=18680 V=18681 A=18682 ADMIN=18689 HOST=static.zdassets.com

# --- origin content: the corpus pages and a 64 KiB asset ---------------------------
pages=()
for f in "$CORPUS"/*.html; do
  cp "$f" "$work/root/"
  pages+=("$(basename "$f")")
done
SOAK_PAGES=$(IFS=,; echo "${pages[*]}")
export SOAK_PAGES
head -c 65536 /dev/urandom > "$work/root/asset.bin"
# The vendor's bundle, as in tests/bench/vendor.sh (its own URLs sprinkled through it).
vendor_bundle 300 "$HOST" > "$work/root/web_widget/web_widget.js"
chmod -R a+rX "$work"

# --- the vendor's TLS: a throwaway CA (as tests/bench/vendor.sh) ---------------------
vendor_pki "$work" "$HOST"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/logs/nginx-error.log warn;
pid $work/logs/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; keepalive_requests 1000000;
  types { text/html html; application/octet-stream bin; application/javascript js; }
  server { listen 127.0.0.1:$O; root $work/root; }
  server { listen 127.0.0.1:$V ssl; server_name $HOST; ssl_certificate $work/vendor.pem;
    ssl_certificate_key $work/vendor.key; root $work/root; }
}
CONF

# --- two complete rule trees, A and B -----------------------------------------------
# Each is the shipped rules plus a direct vendor `soak_widget` (its host names the tree)
# allowed on `/**`, whose CSP additions name the tree again (see mix.lua).
for v in a b; do
  d="$work/rules-$v"
  mkdir -p "$d/vendors"
  cp rules/vendors/*.toml "$d/vendors/"
  tail -n 1 rules/site.toml | grep -qx 'allow = \["zendesk"\]' \
    || { echo "rules/site.toml no longer ends with the /** route's allow line; update soak.sh"; exit 1; }
  { head -n -1 rules/site.toml
    echo 'allow = ["zendesk", "soak_widget"]'
    echo '[route.csp]'
    echo "script_src = [\"https://site-$v.soak.example\"]"
  } > "$d/site.toml"
  cat > "$d/vendors/soak_widget.toml" <<TOML
id = "soak_widget"
name = "Soak test widget, tree $v"
category = "support"
baa = false
serve = "direct"
hosts = ["vendor-$v.soak.example"]
TOML
  ./target/release/tagwarden check --rules "$d" >/dev/null
done
ln -s rules-a "$work/rules"

cat > "$work/tagwarden.toml" <<CONF
rules = "$work/rules"
[listen]
address = "127.0.0.1:$A"
[admin]
address = "127.0.0.1:$ADMIN"
[upstream]
url = "http://127.0.0.1:$O"
[limits]
# One load generator on one address: the per-client caps would refuse it.
vendor_requests_per_second = 0
max_connections_per_ip = 10000
[vendors]
resolve = { "$HOST" = "127.0.0.1:$V" }
ca_file = "$work/ca.pem"
CONF

nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
RUST_LOG=warn ./target/release/tagwarden serve --config "$work/tagwarden.toml" >"$work/logs/tagwarden.log" 2>&1 &
tw=$!
pids+=("$tw")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$A/${pages[0]}" && break; sleep 0.1; done
for p in "/${pages[0]}" /asset.bin "/_tw/zendesk/$HOST/web_widget/web_widget.js"; do
  curl -s -o /dev/null -w "warm-up $p: %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$A$p"
done

metric() { # name{labels} -> value (0 when absent)
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$tw/status" 2>/dev/null || echo 0; }

# Warm-up (caches, pools, allocator), then the RSS baseline.
wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s tests/load/mix.lua "http://127.0.0.1:$A/" >/dev/null 2>&1 || true
reloads_before=$(metric 'tagwarden_rules_reloads_total{result="ok"}')
reload_errors_before=$(metric 'tagwarden_rules_reloads_total{result="error"}')

# Rules: swap A <-> B and SIGHUP once a second, for the length of the run.
(
  v=a
  end=$((SECONDS + SECONDS_TO_RUN))
  while [ "$SECONDS" -lt "$end" ]; do
    sleep 1
    v=$([ "$v" = a ] && echo b || echo a)
    ln -sfn "rules-$v" "$work/rules.next" && mv -T "$work/rules.next" "$work/rules"
    kill -HUP "$tw" 2>/dev/null || exit 0
  done
) & pids+=($!)
# RSS every 5 s.
( while kill -0 "$tw" 2>/dev/null; do echo "$SECONDS $(rss_kib)"; sleep 5; done ) > "$work/rss.txt" & pids+=($!)

echo "soak: ${SECONDS_TO_RUN}s, wrk -t$THREADS -c$CONNECTIONS, ${#pages[@]} corpus pages, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --timeout 10s -s tests/load/mix.lua \
  "http://127.0.0.1:$A/" > "$work/wrk.txt" 2>&1 || true
sleep 1
reloads=$(( $(metric 'tagwarden_rules_reloads_total{result="ok"}') - reloads_before ))
reload_errors=$(( $(metric 'tagwarden_rules_reloads_total{result="error"}') - reload_errors_before ))
echo "SAMPLE $SECONDS $(rss_kib)" >> "$work/rss.txt"
grep -v '^SOAK' "$work/wrk.txt" | sed 's/^/wrk: /'
grep '^SOAK' "$work/wrk.txt" | sed 's/^SOAK /  /'
read -r rss_start rss_max rss_end samples < <(awk '{ v = $NF; if (NR == 1) s = v; if (v > m) m = v; e = v; n++ }
  END { print s, m, e, n }' "$work/rss.txt")
echo "  reloads_ok=$reloads reload_errors=$reload_errors"
echo "  rss_kib start=$rss_start max=$rss_max end=$rss_end (samples=$samples, every 5 s)"
echo "  rss_mib each minute: $(awk 'NR % 12 == 1 { printf "%d ", $NF / 1024 }' "$work/rss.txt")"
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

fail=()
v() { grep '^SOAK' "$work/wrk.txt" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
for k in non2xx status_errors connect write timeout partial; do
  [ "$(v "$k")" = 0 ] || fail+=("$k=$(v "$k")")
done
# Every response is framed (Content-Length or chunked): a close-delimited one costs the
# visitor a connection and is a regression (the vendor path's were, until it sent them
# chunked), and so is any read error.
[ "$(v close_delimited)" = 0 ] || fail+=("close_delimited=$(v close_delimited)")
[ "$(v read)" = 0 ] || fail+=("read=$(v read)")
[ "$(v html)" -gt 0 ] 2>/dev/null || fail+=("no HTML responses checked")
[ "$reload_errors" = 0 ] || fail+=("reload_errors=$reload_errors")
[ "$reloads" -ge $((SECONDS_TO_RUN / 2)) ] || fail+=("reloads=$reloads")
[ "$rss_end" -le $((rss_start + 65536)) ] || fail+=("rss grew from $rss_start to $rss_end KiB")
if [ ${#fail[@]} -gt 0 ]; then
  echo "soak: FAILED: ${fail[*]}"
  exit 1
fi
echo "soak: ok (0 failed requests, 0 on partial rules, RSS flat)"
