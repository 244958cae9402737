-- Vault transit encrypt: POST /v1/transit/encrypt/<TRANSIT_KEY> of the same 32-byte value as the KV writes,
-- against OpenBao or donjon's Vault API alike. Uses the shared harness's common.lua (RESULT line, status counts).
-- Env: BAO_TOKEN (X-Vault-Token, required), TRANSIT_KEY (default "bench"), CONN_CLOSE=1 (default) "Connection: close".
package.path = (os.getenv("LOAD_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
setup, init, response, done = c.setup, c.init, c.response, c.done
wrk.method = "POST"
wrk.path = "/v1/transit/encrypt/" .. (os.getenv("TRANSIT_KEY") or "bench")
wrk.body = '{"plaintext": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}'
wrk.headers = {["X-Vault-Token"] = assert(os.getenv("BAO_TOKEN"), "BAO_TOKEN env var required"),
               ["Content-Type"] = "application/json", ["Accept"] = "application/json"}
if (os.getenv("CONN_CLOSE") or "1") == "1" then wrk.headers["Connection"] = "close" end
