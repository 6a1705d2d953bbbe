-- One request, built once by wrk: a GET of the URL, or a POST of one message
-- (raw body) or of a JSON batch.
--
--   key=KEY          Authorization: Application KEY (optional)
--   method=POST      POST instead of GET
--   size=140         message size in bytes (POST)
--   batch=100        send a JSON batch of this many messages (POST)

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "report.lua")

function init(args)
   local options = parse_options(args)
   if options.key then
      wrk.headers["Authorization"] = "Application " .. options.key
   end
   if options.method == "POST" then
      wrk.method = "POST"
      local size = tonumber(options.size or "140")
      if options.batch then
         wrk.body = batch_body(size, tonumber(options.batch))
         wrk.headers["Content-Type"] = "application/json"
      else
         wrk.body = message_body(size)
         wrk.headers["Content-Type"] = "text/plain"
      end
   end
end
