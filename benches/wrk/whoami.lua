-- wrk cross-check of benches/e2e.rs (`call` load): POST tools/call whoami.
--
--   B=$(ls -t target-bench/release/deps/e2e-* | grep -v '\.d$' | head -1)
--   $B __serve layer        # prints "listening on http://127.0.0.1:PORT/mcp"
--   MCP_SESSION_ID=... wrk -t1 -c8 -d5s --latency -s benches/wrk/whoami.lua http://127.0.0.1:PORT/mcp
--
-- MCP_SESSION_ID: the id from an initialize answer (followed by
-- notifications/initialized); leave it unset for the `stateless` server.
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer alice-token"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local session = os.getenv("MCP_SESSION_ID")
if session ~= nil and session ~= "" then
  wrk.headers["Mcp-Session-Id"] = session
end
