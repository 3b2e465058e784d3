-- POST /v1/messages: one SMS with a text of its own to a new number each time.
-- wrk -s messages.lua URL -- <api key> <run prefix> [limit marker-file]
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

local counter, limit, answered, prefix, headers, marker = 0, nil, 0, "run", {}, nil

function init(args)
  headers["Authorization"] = "Bearer " .. args[1]
  headers["Content-Type"] = "application/json"
  prefix = args[2]
  limit = tonumber(args[3] or "")
  marker = args[4]
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"to": "+336%08d", "text": "Your kayak %s-%d is ready at the pier.", "tag": "bench"}',
    10000000 + (counter % 89999999), prefix, counter)
  return wrk.format("POST", "/v1/messages", headers, body)
end

function response(status, hdrs, body)
  answered = answered + 1
  if limit and answered == limit then
    if marker then io.open(marker, "w"):close() end
    wrk.thread:stop()
  end
end

done = common.done
