-- Read one secret's payload (DONJON_SECRET_ID) as raw bytes.
package.path = (os.getenv("DONJON_WRK_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
setup, init, response, done = c.setup, c.init, c.response, c.done
wrk.method = "GET"
wrk.path = "/v1/secrets/" .. (os.getenv("DONJON_SECRET_ID") or "missing") .. "/payload"
wrk.headers = c.headers({["Accept"] = "application/octet-stream"})
