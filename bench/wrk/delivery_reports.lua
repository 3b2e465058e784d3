-- GET delivery reports for SMS ids read from a file (one per line), each report unique
-- (its date differs), cycling through the ids.
-- wrk -s delivery_reports.lua URL -- <callback token> <ids file>
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

local ids, counter, token, offset = {}, 0, "", 0

function init(args)
  token = args[1]
  for line in io.lines(args[2]) do ids[#ids + 1] = line end
  offset = math.random(0, 3000000)
end

function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  local seconds = offset + counter
  local date = string.format("2026-11-21T%02d:%02d:%02d+00:00",
    math.floor(seconds / 3600) % 24, math.floor(seconds / 60) % 60, seconds % 60)
  local path = string.format(
    "/v1/providers/ovh/%s/dlr?id=%s&dlr=1&ptt=4&date=%s&description=Delivered&descriptionDlr=Success",
    token, id, date:gsub("+", "%%2B"))
  return wrk.format("GET", path)
end

done = common.done
