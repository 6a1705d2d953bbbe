-- dynamic.lua at a fixed request rate, scheduled by pacing.lua.
--
--   rate=R   requests per second for this wrk thread (run wrk with -t1)

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
extra_counters = { "late_sends", "late_ms_max", "paced_sends" }
dofile(here .. "dynamic.lua")
dofile(here .. "pacing.lua")

local dynamic_init = init

function init(args)
   local rest, paced = take_rate(args)
   assert(paced, "paced.lua needs rate=R")
   dynamic_init(rest)
end

function delay()
   return paced_delay()
end
