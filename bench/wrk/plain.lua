-- GET the URL as is (the load generator's own ceiling, against the baseline's /ping).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")
done = common.done
