-- wrk script for bench/run.ts: one request shape per run, chosen by the arguments after `--`:
--   mode ids_file prefix suffix api_key nonce
-- mode: get (GET prefix..id..suffix), patch (PATCH with a metadata change), post (POST a new
-- individual), static (GET prefix as is). Ids come from a Lua file that returns a table, loaded once
-- per thread; the per-request work is a random pick and a string concatenation, identical for Kyclo
-- and for the baselines. done() prints one JSON line the runner parses.

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local mode, ids, prefix, suffix, headers, nonce, fixed
local n = 0

function init(args)
  mode = args[1]
  ids = dofile(args[2])
  prefix = args[3]
  suffix = args[4] or ""
  nonce = args[6] or "0"
  headers = {}
  if args[5] and args[5] ~= "" and args[5] ~= "-" then headers["Authorization"] = "Bearer " .. args[5] end
  if mode == "patch" then headers["Content-Type"] = "application/merge-patch+json" end
  if mode == "post" then headers["Content-Type"] = "application/json" end
  math.randomseed(tonumber(nonce) % 1000003 + tid * 7919)
  if mode == "static" then fixed = wrk.format("GET", prefix, headers) end
end

function request()
  if fixed then return fixed end
  n = n + 1
  local id = ids[math.random(#ids)]
  if mode == "get" then
    return wrk.format("GET", prefix .. id .. suffix, headers)
  elseif mode == "patch" then
    return wrk.format("PATCH", prefix .. id .. suffix, headers,
      '{"metadata":{"bench":"' .. nonce .. "-" .. tid .. "-" .. n .. '"}}')
  elseif mode == "post" then
    return wrk.format("POST", prefix, headers,
      '{"type":"individual","first_name":"Bench","last_name":"Runner","country":"FR","email":"bench.' ..
      nonce .. "." .. tid .. "." .. n .. '@example.com","phone":"+33612345678"}')
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
