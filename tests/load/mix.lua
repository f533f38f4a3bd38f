-- wrk script for tests/load/soak.sh: a fixed mix of requests, and a check of every
-- HTML response's rules version.
--
-- Mix (by request number, so every thread sends the same proportions):
--   10 in 20  HTML pages from the corpus (rewritten)
--    4 in 20  a binary asset (passed through untouched)
--    4 in 20  the vetted vendor's JavaScript on the first-party path (/_tw/zendesk/...)
--    2 in 20  a CSP violation report (POST /_tw/csp-report, answered 204)
--
-- Rules version: the soak alternates two complete rule trees, A and B. Each names
-- its own marker host twice, in two different files: the site file
-- (site-a.soak.example, in the route's CSP additions) and a vendor file
-- (vendor-a.soak.example, a direct vendor the route allows), and both appear in
-- the Content-Security-Policy the proxy builds from the rules a request used.
-- A response whose CSP holds the site marker of one tree and the vendor marker of
-- the other, or lacks either, was served on rules that were never one whole tree:
-- counted as "partial".

local pages = {}
for p in string.gmatch(os.getenv("SOAK_PAGES") or "page.html", "[^,]+") do
  pages[#pages + 1] = "/" .. p
end
local vendor_js = "/_tw/zendesk/static.zdassets.com/web_widget/web_widget.js"
local report = '{"csp-report":{"document-uri":"http://127.0.0.1/page","violated-directive":"script-src-elem",'
  .. '"effective-directive":"script-src-elem","blocked-uri":"https://connect.facebook.net/en_US/fbevents.js"}}'

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  n = 0
  html, version_a, version_b, partial, non2xx, other, close_delimited = 0, 0, 0, 0, 0, 0, 0
end

function request()
  n = n + 1
  local slot = n % 20
  if slot < 10 then
    return wrk.format("GET", pages[(n % #pages) + 1], { ["Accept"] = "text/html", ["Accept-Encoding"] = "gzip" })
  elseif slot < 14 then
    return wrk.format("GET", "/asset.bin")
  elseif slot < 18 then
    return wrk.format("GET", vendor_js, { ["Accept-Encoding"] = "gzip" })
  else
    return wrk.format("POST", "/_tw/csp-report", { ["Content-Type"] = "application/csp-report" }, report)
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    return
  end
  local csp, framed
  for k, v in pairs(headers) do
    local name = string.lower(k)
    if name == "content-security-policy" then
      csp = v
    elseif name == "content-length" or name == "transfer-encoding" then
      framed = true
    end
  end
  -- A body delimited by closing the connection: wrk counts that close as a read error.
  if not framed and status ~= 204 and status ~= 304 then
    close_delimited = close_delimited + 1
  end
  if csp == nil then
    other = other + 1
    return
  end
  html = html + 1
  local sa = string.find(csp, "site-a.soak.example", 1, true) ~= nil
  local va = string.find(csp, "vendor-a.soak.example", 1, true) ~= nil
  local sb = string.find(csp, "site-b.soak.example", 1, true) ~= nil
  local vb = string.find(csp, "vendor-b.soak.example", 1, true) ~= nil
  if sa and va and not sb and not vb then
    version_a = version_a + 1
  elseif sb and vb and not sa and not va then
    version_b = version_b + 1
  else
    partial = partial + 1
  end
end

function done(summary, latency, requests)
  local t = { html = 0, version_a = 0, version_b = 0, partial = 0, non2xx = 0, other = 0, close_delimited = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format("SOAK requests=%d duration_s=%.1f rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("SOAK non2xx=%d status_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    t.non2xx, e.status, e.connect, e.read, e.write, e.timeout))
  io.write(string.format("SOAK html=%d version_a=%d version_b=%d partial=%d other_2xx=%d close_delimited=%d\n",
    t.html, t.version_a, t.version_b, t.partial, t.other, t.close_delimited))
end
