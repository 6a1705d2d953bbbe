-- One request to a peer, built once by wrk: METHOD with one extra header and a
-- body in which %MESSAGE% stands for one message of `size` bytes.
--
--   method=POST                          the method (GET without it)
--   type=application/x-amz-json-1.0      Content-Type of the body
--   header=X-Amz-Target: AmazonSQS.SendMessage
--                                        one more header, "Name: value"
--   body={"MessageBody":"%MESSAGE%"}     the body
--   size=140                             message size in bytes

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "../../lua/report.lua")

function init(args)
   local options = parse_options(args)
   wrk.method = options.method or "GET"
   if options.type then
      wrk.headers["Content-Type"] = options.type
   end
   if options.header then
      local name, value = string.match(options.header, "^([^:]+):%s*(.*)$")
      if name == nil then
         error("header " .. options.header .. " is not 'Name: value'")
      end
      wrk.headers[name] = value
   end
   if options.body then
      local message = message_body(tonumber(options.size or "140"))
      wrk.body = string.gsub(options.body, "%%MESSAGE%%", message)
   end
end
