-- Requests built one by one: to a random queue among many, or alternating
-- posts and reads (a mixed load).
--
--   key=KEY             Authorization: Application KEY
--   mode=post|read|mixed
--   path=/v1/app/q%07d  the queue's path, a format for a number when queues= is given
--   queues=N            pick the queue uniformly among numbers 0..N-1 for each request
--   size=140            message size in bytes (posts)
--   limit=10            page size (reads)

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "report.lua")

local options, headers, post_headers, body, queues, count

function init(args)
   options = parse_options(args)
   headers = { ["Authorization"] = "Application " .. options.key }
   post_headers = { ["Authorization"] = headers["Authorization"], ["Content-Type"] = "text/plain" }
   body = message_body(tonumber(options.size or "140"))
   queues = tonumber(options.queues or "0")
   count = 0
   math.randomseed(os.time())
end

local function queue_path()
   if queues > 0 then
      return string.format(options.path, math.random(0, queues - 1))
   end
   return options.path
end

function request()
   count = count + 1
   local post = options.mode == "post" or (options.mode == "mixed" and count % 2 == 1)
   if post then
      return wrk.format("POST", queue_path(), post_headers, body)
   end
   return wrk.format("GET", queue_path() .. "?limit=" .. (options.limit or "10"), headers)
end
