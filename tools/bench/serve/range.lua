-- wrk script for tools/bench/serve.sh: every request asks for one random byte range
--   Range: bytes=A-(A+LEN-1)
-- of a file of SIZE bytes, with A uniform in [0, SIZE-LEN] and rounded down to a
-- multiple of ALIGN (ALIGN=1: any byte offset). The offsets come from a fixed seed
-- per thread, so every server gets the same sequence of ranges.
--
-- Usage: RANGE_OUT=FILE wrk ... -s range.lua URL -- SIZE LEN ALIGN SEED
--
-- No response() callback on purpose: with one, wrk hands every body (LEN bytes) to
-- Lua, which would cost the load generator more CPU than the server under test.
-- wrk itself counts statuses outside 200-399 (errors.status) and socket errors;
-- serve.sh checks separately (with curl) that both servers answer 206 with the
-- right bytes, and that the bytes per request here match LEN.
--
-- done() (run in wrk's main Lua state, which never sees the arguments) writes one line
-- of key=value pairs to $RANGE_OUT, or stdout when unset (latencies in microseconds).

local threads = {}
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("tid", counter)
    table.insert(threads, thread)
end

local size, len, align, path

function init(args)
    size = tonumber(args[1])
    len = tonumber(args[2])
    align = tonumber(args[3]) or 1
    local seed = tonumber(args[4]) or 1
    if not size or not len or len > size or align < 1 then
        error("range.lua: need SIZE LEN ALIGN SEED after --, with LEN <= SIZE")
    end
    math.randomseed(seed * 1000 + tid)
    path = wrk.path
end

-- math.random(m, n) in LuaJIT takes doubles up to 2^53 exactly: enough for any file here.
function request()
    local span = size - len
    local a = 0
    if span > 0 then
        a = math.random(0, span)
        if align > 1 then
            a = a - (a % align)
        end
    end
    return wrk.format("GET", path, { ["Range"] = string.format("bytes=%d-%d", a, a + len - 1) })
end

function done(summary, latency, requests)
    local out = io.open(os.getenv("RANGE_OUT") or "/dev/stdout", "w")
    local e = summary.errors
    out:write(string.format(
        "requests=%d bytes=%d duration_us=%d err_connect=%d err_read=%d err_write=%d " ..
        "err_status=%d err_timeout=%d lat_p50=%d lat_p90=%d lat_p99=%d lat_max=%d lat_mean=%.1f\n",
        summary.requests, summary.bytes, summary.duration,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
    out:close()
end
