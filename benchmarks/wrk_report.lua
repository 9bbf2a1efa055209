-- wrk script for the benchmarks: POSTs the JSON body in the file named by
-- $BENCH_BODY_FILE, counts the answers per worker (X-Worker-PID) and those
-- that are not 2xx, and prints everything as one JSON line when done.

local body_file = assert(io.open(assert(os.getenv("BENCH_BODY_FILE")), "rb"))
wrk.method = "POST"
wrk.body = body_file:read("*a")
body_file:close()
wrk.headers["Content-Type"] = "application/json"

-- Main state: the threads, to collect their counts in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per thread (each thread has its own Lua state).
per_worker = {}
not_2xx = 0

function response(status, headers, body)
  local pid = headers["x-worker-pid"] or headers["X-Worker-PID"] or "none"
  per_worker[pid] = (per_worker[pid] or 0) + 1
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
  end
end

function done(summary, latency, requests)
  local workers, failed = {}, 0
  for _, thread in ipairs(threads) do
    for pid, count in pairs(thread:get("per_worker")) do
      workers[pid] = (workers[pid] or 0) + count
    end
    failed = failed + thread:get("not_2xx")
  end
  local counts = {}
  for pid, count in pairs(workers) do
    table.insert(counts, string.format('"%s": %d', pid, count))
  end
  local percentiles = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    table.insert(percentiles, string.format('"%s": %.1f', p, latency:percentile(p)))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"not_2xx": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d}, "latency_us": {"mean": %.1f, "max": %.1f, '
      .. '"percentiles": {%s}}, "per_worker": {%s}}\n',
    summary.duration, summary.requests, summary.bytes, failed,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency.max, table.concat(percentiles, ", "), table.concat(counts, ", ")))
end
