-- wrk: single-unit PATCH over units single-0000 … single-0999, alternating the status.
-- BENCH_TOKEN: the API token. BENCH_KEYED=1: a new Idempotency-Key on every request.
local token = os.getenv("BENCH_TOKEN")
local keyed = os.getenv("BENCH_KEYED") == "1"
local threads = 0
local counter = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  prefix = string.format("wrk-%d-%d-%d", os.time(), thread_number, math.random(1000000000))
end

function request()
  counter = counter + 1
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  if keyed then
    headers["Idempotency-Key"] = prefix .. "-" .. counter
  end
  local status = (counter % 2 == 0) and "rented" or "available"
  local path = string.format("/api/v2/units/single-%04d", (counter * 7 + thread_number * 131) % 1000)
  return wrk.format("PATCH", path, headers, '{"status":"' .. status .. '"}')
end
