-- A fixed request rate for wrk (it has no -R; wrk2 is not in Debian), and a clock.
--
-- Sends follow a schedule, one slot every 1/R s; a connection that answers
-- early waits for the next free slot (delay()). When the server falls behind,
-- late slots (up to 1 s of them) are sent at once, so the offered rate holds,
-- but wrk times each request from when it was sent, not from its slot:
-- latency hidden by a stall (coordinated omission) is not counted. `late_sends` counts sends more than
-- 1 ms behind their slot and `late_ms_max` the worst, to show when that happens.
--
-- A script loads it with dofile() after report.lua, lists the counters in
-- `extra_counters`, and calls take_rate(args) in init() and paced_delay() in delay().

local ffi = require("ffi")
ffi.cdef([[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clock, bench_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
   return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local interval, next_slot
late_sends, late_ms_max, paced_sends = 0, 0, 0
pacing_counters = { "late_sends", "late_ms_max", "paced_sends" }

-- Takes `rate=R` (requests per second for this wrk thread; run wrk with -t1) out of
-- `args`; returns the other arguments and whether a rate was given.
function take_rate(args)
   local rest = {}
   for _, arg in ipairs(args) do
      local rate = string.match(arg, "^rate=(.*)$")
      if rate then
         interval = 1000 / tonumber(rate)
      else
         table.insert(rest, arg)
      end
   end
   return rest, interval ~= nil
end

-- Milliseconds to wait before the next send (wrk's delay()).
function paced_delay()
   local now = now_ms()
   next_slot = math.max(next_slot or now, now - 1000) + interval
   paced_sends = paced_sends + 1
   local wait = next_slot - now
   if wait < -1 then
      late_sends = late_sends + 1
      late_ms_max = math.max(late_ms_max, -wait)
   end
   return math.max(0, math.floor(wait))
end
