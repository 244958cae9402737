-- Shared by the donjon load scripts: headers, per-status counting across wrk threads, one JSON result line.
-- Env: DONJON_PROJECT (X-Project-Id), DONJON_CLOSE=1 to send "Connection: close", DONJON_HEADER="Name: value".
local M = {}
local threads = {}

function M.headers(extra)
  local h = extra or {}
  h["X-Project-Id"] = os.getenv("DONJON_PROJECT") or "bench"
  if os.getenv("DONJON_CLOSE") == "1" then h["Connection"] = "close" end
  local more = os.getenv("DONJON_HEADER")
  if more and more ~= "" then
    local name, value = more:match("^%s*([^:]+):%s*(.*)$")
    if name then h[name] = value end
  end
  return h
end

function M.setup(thread) table.insert(threads, thread) end
function M.init() statuses = {} end
function M.response(status) statuses[status] = (statuses[status] or 0) + 1 end

function M.done(summary, latency)
  local seconds = summary.duration / 1e6
  local all, failed, parts = {}, 0, {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do all[code] = (all[code] or 0) + n end
  end
  for code, n in pairs(all) do
    if code < 200 or code > 299 then failed = failed + n end
    table.insert(parts, string.format('"%d": %d', code, n))
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'DONJON_RESULT {"requests": %d, "seconds": %.2f, "ok_per_s": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
    '"errors": %d, "non_2xx": %d, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, seconds, (summary.requests - failed) / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    failed + socket, failed, socket, table.concat(parts, ", ")))
end

return M
