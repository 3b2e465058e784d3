-- POST /v1/booking-events with a new event id, booking title and offeror number each time,
-- so every request creates one message with a text of its own (no batching by text).
-- wrk -s booking_events.lua URL -- <api key> <run prefix> [limit marker-file]
-- With a limit, the thread stops after that many answers and creates marker-file (wrk
-- itself runs on until its duration or SIGINT: the harness sends SIGINT on the marker).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

local counter, limit, answered, prefix, headers, marker = 0, nil, 0, "run", {}, nil

function init(args)
  headers["Authorization"] = "Bearer " .. args[1]
  headers["Content-Type"] = "application/json"
  prefix = args[2] .. "-" .. tostring(math.random(1, 1000000000))
  limit = tonumber(args[3] or "")
  marker = args[4]
end

local template = '{"event_id": "%s-%d", "type": "booking.requested",' ..
  ' "booking": {"id": "b-%s-%d", "title": "Kayak #%d",' ..
  ' "starts_at": "2026-12-01T09:00:00+01:00", "expires_at": "2026-11-22T09:00:00+01:00"},' ..
  ' "asker": {"user_ref": "u-a%d", "name": "Anna", "phone": "+33601020304", "language": "fr"},' ..
  ' "offeror": {"user_ref": "u-o%d", "name": "Marc", "phone": "+336%08d", "language": "en"}}'

function request()
  counter = counter + 1
  local body = string.format(template, prefix, counter, prefix, counter, counter, counter,
    counter, 10000000 + (counter % 89999999))
  return wrk.format("POST", "/v1/booking-events", headers, body)
end

function response(status, hdrs, body)
  answered = answered + 1
  if limit and answered == limit then
    if marker then io.open(marker, "w"):close() end
    wrk.thread:stop()
  end
end

done = common.done
