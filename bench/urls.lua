-- Request a list of URL paths instead of one:
--   wrk ... --script bench/urls.lua URL -- FILE THREADS once|cycle [TIMES]
-- FILE holds one path a line, in the order to request them. Thread n of THREADS takes lines n, n+THREADS, ...
-- so every path goes to one thread only. "cycle" goes round and round (readers). "once" requests each path
-- once and stops the thread when its share is done (a crawler); wrk itself still reports over the whole -d
-- duration, so each thread writes "start-time end-time" (seconds) to TIMES-<thread> for the caller to divide
-- by. bench/harness.py runs "once" with one thread: a stopped thread leaves its unwritten connections open, each
-- holding a sync worker until wrk exits, which stalled any other thread. The start is taken at init, just before the threads start: wrk calls thread 0's request() once more
-- before that, to check it, which costs that thread its first path. No response() function: defining one makes wrk parse every body, a cost no server pays.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } quire_timeval;
int gettimeofday(quire_timeval *tv, void *tz);
]]

local function now()
  local tv = ffi.new("quire_timeval")
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  local threads = tonumber(args[2])
  once = args[3] == "once"
  times = args[4]
  paths = {}
  local number = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if number % threads == id then
        paths[#paths + 1] = line
      end
      number = number + 1
    end
  end
  position = 0
  started = now()
end

function request()
  position = position + 1
  if position > #paths then
    if once then
      if position == #paths + 1 and times then
        local file = io.open(times .. "-" .. id, "w")
        file:write(string.format("%.6f %.6f\n", started, now()))
        file:close()
      end
      wrk.thread:stop()
      return wrk.format("GET", paths[#paths])  -- to the few connections asking before the thread stops
    end
    position = 1
  end
  return wrk.format("GET", paths[position])
end
