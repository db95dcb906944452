-- wrk: GET /tenant/access, cycling through the tenant tokens in BENCH_TOKENS_FILE (one per line).
local tokens = {}
local counter = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  counter = math.random(#tokens)
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("GET", "/api/v2/tenant/access", {["Authorization"] = "Bearer " .. token})
end
