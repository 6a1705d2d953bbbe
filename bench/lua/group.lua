-- Consume with a consumer group: claim a batch, acknowledge its receipts, again.
--
--   key=KEY                        Authorization: Application KEY
--   path=/v1/APP/QUEUE/groups/G    the group
--   limit=100                      messages per claim
--   rate=R                         optional: pace all requests at R per second (pacing.lua)
--
-- Each claim's answer queues one acknowledgement of its receipts, which the
-- next connection ready to send sends (wrk does not tell a script which
-- connection answered); a connection with no acknowledgement waiting claims.
-- So acknowledgements follow claims one for one, on the same connections.
-- Every request carries an X-Request-ID, which Queuey echoes: the script
-- matches each answer to its request and times the claims alone (`claim_ms`,
-- from the send to the answer as wrk times every request). Counters:
-- `claims`, `claimed` (messages), `empty_claims` (the group had none left),
-- `acks`, `acked` (messages accepted), `lost` (receipts answered LeaseLost),
-- `unmatched` (answers without an X-Request-ID the script sent).

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
extra_counters = { "claims", "claimed", "empty_claims", "acks", "acked", "lost", "unmatched",
                   "late_sends", "late_ms_max", "paced_sends" }
extra_samples = { "claim_ms" }
dofile(here .. "report.lua")
dofile(here .. "pacing.lua")

claims, claimed, empty_claims, acks, acked, lost, unmatched = 0, 0, 0, 0, 0, 0, 0
claim_ms = {}

local claim_path, ack_path, claim_body, request_headers
local waiting = {} -- acknowledgements to send, oldest first
local sent = {} -- by X-Request-ID: { claim = bool, at = ms, count = receipts }
local serial = 0

function init(args)
   local rest, paced = take_rate(args)
   local options = parse_options(rest)
   claim_path = options.path .. "/claim"
   ack_path = options.path .. "/ack"
   claim_body = '{"limit":' .. (options.limit or "100") .. "}"
   request_headers = {
      ["Authorization"] = "Application " .. options.key,
      ["Content-Type"] = "application/json",
   }
   if paced then
      delay = paced_delay -- only then: wrk runs a timer per request when delay() exists
   end
end

function request()
   serial = serial + 1
   local id = tostring(serial)
   request_headers["X-Request-ID"] = id
   local ack = table.remove(waiting, 1)
   if ack then
      sent[id] = { claim = false, at = now_ms(), count = ack.count }
      return wrk.format("POST", ack_path, request_headers, ack.body)
   end
   sent[id] = { claim = true, at = now_ms(), count = 0 }
   return wrk.format("POST", claim_path, request_headers, claim_body)
end

local function claimed_answer(status, body, asked)
   claims = claims + 1
   if status ~= 200 then
      return
   end
   table.insert(claim_ms, now_ms() - asked.at)
   local receipts = {}
   for receipt in string.gmatch(body, '"receipt":"([^"]+)"') do
      receipts[#receipts + 1] = '"' .. receipt .. '"'
   end
   if #receipts == 0 then
      empty_claims = empty_claims + 1
      return
   end
   claimed = claimed + #receipts
   table.insert(waiting, {
      body = '{"receipts":[' .. table.concat(receipts, ",") .. "]}",
      count = #receipts,
   })
end

local function acked_answer(status, body, asked)
   acks = acks + 1
   if status == 200 then
      acked = acked + asked.count
   elseif status == 409 then -- LeaseLost: the others were acknowledged all the same
      local list = string.match(body, '"lost":%[(.-)%]') or ""
      local _, gone = string.gsub(list, '"[^"]*"', "")
      lost = lost + gone
      acked = acked + asked.count - gone
   end
end

function response(status, headers, body)
   local id = headers["x-request-id"] or headers["X-Request-ID"]
   local asked = id and sent[id]
   if not asked then
      unmatched = unmatched + 1
      return
   end
   sent[id] = nil
   if asked.claim then
      claimed_answer(status, body, asked)
   else
      acked_answer(status, body, asked)
   end
end
