-- Store a 32-byte symmetric key (base64, application/octet-stream), as a provisioning service would.
package.path = (os.getenv("DONJON_WRK_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
setup, init, response, done = c.setup, c.init, c.response, c.done
wrk.method = "POST"
wrk.path = "/v1/secrets"
wrk.headers = c.headers({["Content-Type"] = "application/json", ["Accept"] = "application/json"})
wrk.body = '{"name": "bench-key", "secret_type": "symmetric", "algorithm": "aes", "bit_length": 256, ' ..
  '"payload": "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=", ' ..
  '"payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"}'
