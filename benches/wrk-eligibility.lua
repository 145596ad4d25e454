-- wrk script: checkCardEligibility with distinct sealed envelopes, rotated.
--
--   issuer-gateway simulate ... --count 20000 --write-requests bodies.jsonl
--   BODIES=bodies.jsonl ISSUER_ID=BENCHBANK1 wrk -t2 -c32 -d20s --latency \
--     -s benches/wrk-eligibility.lua http://127.0.0.1:8443
--
-- Each request takes the next body of the file (each thread starts at its own offset), carries
-- a correlation id of its own, and every answer other than 200 is counted and printed at the end:
-- a benchmark with refusals measures the wrong thing.

local bodies = {}
local threads = {}
local counter = 0

local function load()
  local path = os.getenv("BODIES") or "bodies.jsonl"
  local f = assert(io.open(path, "r"), "cannot open " .. path .. " (set BODIES)")
  for line in f:lines() do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  f:close()
  assert(#bodies > 0, path .. " holds no request body")
end

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  load()
  next_body = (id * 7919) % #bodies
  sent = 0
  non200 = 0
  path = (os.getenv("BASE_PATH") or "/issuer/igwapi/v2.0") .. "/checkCardEligibility"
  headers = {
    ["Content-Type"] = "application/json",
    ["x-issuer-id"] = os.getenv("ISSUER_ID") or "BENCHBANK1",
  }
  math.randomseed(os.time() * 1000 + id)
  run = tostring(math.random(100000000, 999999999))
end

function request()
  next_body = next_body % #bodies + 1
  sent = sent + 1
  headers["x-correlation-id"] = string.format("wrk-%s-%d-%d", run, id, sent)
  return wrk.format("POST", path, headers, bodies[next_body])
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("non200") or 0) end
  io.write(string.format("non-200 answers: %d\n", bad))
  for _, p in ipairs({ 50, 90, 99 }) do
    io.write(string.format("latency p%d: %.2f ms\n", p, latency:percentile(p) / 1000.0))
  end
end
