-- bench/oauth/load.lua: the wrk load generator of run.mjs, the same for both
-- peers.  Each connection keeps one unit of work in flight:
--   GH_WORK=refresh  the units are refresh tokens; each 200 answer's
--                    refresh_token replaces the one used (chains rotate)
--   GH_WORK=code     the units are "code verifier" pairs, each used once;
--                    run.mjs makes more than the run can use
-- Units come one per line from the file GH_UNITS and are dealt to the
-- threads round robin.  done() prints one JSON line for run.mjs.
local work = os.getenv("GH_WORK")
local threads = {}

function setup(thread)
  local n = tonumber(os.getenv("GH_THREADS"))
  local idx = #threads
  local mine, i = {}, 0
  for line in io.lines(os.getenv("GH_UNITS")) do
    if i % n == idx then mine[#mine + 1] = line end
    i = i + 1
  end
  thread:set("units", table.concat(mine, "\n"))
  -- wrk calls request() once on the first thread to verify the script before
  -- sending anything; that call must not use up a unit
  thread:set("verify", idx == 0)
  threads[#threads + 1] = thread
end

function init(args)
  queue, head, tail = {}, 1, 0
  for u in string.gmatch(units, "[^\n]+") do tail = tail + 1; queue[tail] = u end
  path = os.getenv("GH_PATH")
  client_id = os.getenv("GH_CLIENT")
  redirect = os.getenv("GH_REDIRECT")
  ok, bad, exhausted = 0, 0, 0
  headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end      -- Host
  headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local function enc(s) return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)) end

function request()
  local u = queue[head]
  if verify then
    verify = false
    return wrk.format("GET", "/", headers)
  end
  if u == nil then
    -- out of units (a chain broke, or too few codes): run.mjs refuses the result
    exhausted = 1
    return wrk.format("GET", "/", headers)
  end
  queue[head] = nil
  head = head + 1
  local body
  if work == "refresh" then
    body = "grant_type=refresh_token&client_id=" .. enc(client_id) .. "&refresh_token=" .. enc(u)
  else
    local code, verifier = u:match("^(%S+) (%S+)$")
    body = "grant_type=authorization_code&client_id=" .. enc(client_id) .. "&code=" .. enc(code) ..
           "&code_verifier=" .. enc(verifier) .. "&redirect_uri=" .. enc(redirect)
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
  if status == 200 then
    ok = ok + 1
    if work == "refresh" then
      local rt = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if rt then tail = tail + 1; queue[tail] = rt else bad = bad + 1 end
    end
  else
    if bad == 0 then io.stderr:write("first failure: ", status, " ", body, "\n") end
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local ok_, bad_, ex = 0, 0, 0
  for _, t in ipairs(threads) do
    ok_ = ok_ + t:get("ok"); bad_ = bad_ + t:get("bad"); ex = ex + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    '@@{"ok":%d,"bad":%d,"exhausted":%d,"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"socket_errors":%d,"timeouts":%d}\n', ok_, bad_, ex, summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write, e.timeout))
end
