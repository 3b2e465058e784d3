-- POST /events to the baseline app: the same body shape as booking_events.lua.
-- wrk -s baseline.lua URL -- <run prefix>
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

local counter, prefix, headers = 0, "run", {["Content-Type"] = "application/json"}

function init(args)
  prefix = args[1] .. "-" .. tostring(math.random(1, 1000000000))
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
  return wrk.format("POST", "/events", headers, body)
end

done = common.done
