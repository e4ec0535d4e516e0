-- bench/gateway/call.lua — wrk script: POST one tools/call per request.
-- Environment: BENCH_TOOL (tool name), BENCH_AUTH (a bearer token, optional),
-- BENCH_SESSION (an Mcp-Session-Id, optional).  done() prints one JSON line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end
local sid = os.getenv("BENCH_SESSION")
if sid and sid ~= "" then wrk.headers["Mcp-Session-Id"] = sid end
local tool = os.getenv("BENCH_TOOL") or "add"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"a":2,"b":3}}}'

-- every answer is checked: a 200 carrying the tool's result ("5")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"text":"5"', 1, true) then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local e = summary.errors
  local w = 0
  for _, t in ipairs(threads) do w = w + (t:get("wrong") or 0) end
  io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"non2xx":%d,"errors":%d,"wrong":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    e.status, e.connect + e.read + e.write + e.timeout, w))
end
