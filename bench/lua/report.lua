-- Shared by the Queuey bench scripts: named arguments and a machine-readable report.
--
-- Arguments come after `--` on the wrk command line as key=value pairs.
-- done() prints one line `WRK-JSON {...}` that bench/wrk.py reads;
-- latencies are in microseconds.

function parse_options(args)
   local options = {}
   for _, arg in ipairs(args) do
      local key, value = string.match(arg, "^([%w_]+)=(.*)$")
      if key == nil then
         error("argument " .. arg .. " is not key=value")
      end
      options[key] = value
   end
   return options
end

-- The body of one message of `size` bytes, and a JSON batch of `count` of them.
function message_body(size)
   return string.rep("x", size)
end

function batch_body(size, count)
   local item = '{"body":"' .. message_body(size) .. '"}'
   local items = {}
   for i = 1, count do
      items[i] = item
   end
   return '{"messages":[' .. table.concat(items, ",") .. ']}'
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Scripts may set thread-local counters named in `extra_counters`; done() sums them.
extra_counters = extra_counters or {}
-- And thread-local lists of latencies in milliseconds named in `extra_samples`, for
-- latencies of some requests only; done() reports NAME_count and NAME_p50_us, _p90_us,
-- _p99_us over all threads (nearest rank).
extra_samples = extra_samples or {}

local function sample_fields(fields, name)
   local all = {}
   for _, thread in ipairs(threads) do
      for _, value in ipairs(thread:get(name) or {}) do
         table.insert(all, value)
      end
   end
   table.sort(all)
   table.insert(fields, string.format('"%s_count":%d', name, #all))
   for _, p in ipairs({50, 90, 99}) do
      local value = all[math.max(1, math.ceil(p / 100 * #all))] or 0
      table.insert(fields, string.format('"%s_p%d_us":%d', name, p, math.floor(value * 1000)))
   end
end

function done(summary, latency, requests)
   local fields = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"connect_errors":%d', summary.errors.connect),
      string.format('"read_errors":%d', summary.errors.read),
      string.format('"write_errors":%d', summary.errors.write),
      string.format('"status_errors":%d', summary.errors.status),
      string.format('"timeouts":%d', summary.errors.timeout),
      string.format('"mean_us":%.1f', latency.mean),
      string.format('"max_us":%d', latency.max),
   }
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(fields, string.format('"p%s_us":%d', tostring(p), latency:percentile(p)))
   end
   for _, name in ipairs(extra_counters) do
      local total = 0
      for _, thread in ipairs(threads) do
         total = total + (tonumber(thread:get(name)) or 0)
      end
      table.insert(fields, string.format('"%s":%s', name, tostring(total)))
   end
   for _, name in ipairs(extra_samples) do
      sample_fields(fields, name)
   end
   io.write("WRK-JSON {" .. table.concat(fields, ",") .. "}\n")
end
