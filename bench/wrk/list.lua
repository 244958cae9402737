-- List the first page (limit 10) of a project holding 1 000 secrets.
package.path = (os.getenv("DONJON_WRK_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
setup, init, response, done = c.setup, c.init, c.response, c.done
wrk.method = "GET"
wrk.path = "/v1/secrets?limit=10"
wrk.headers = c.headers({["Accept"] = "application/json"})
