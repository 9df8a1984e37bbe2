#!/usr/bin/env python3
"""One MCP session whose requests alternate between two server replicas.

usage: replicas_client.py URL_A URL_B

The official MCP Python SDK (mode="legacy": the initialize handshake and a
session) connects as alice through an HTTP transport that sends every request
to the other replica than the one before: initialize to A, the next request to
B, and so on (the same path, the Host header rewritten). Both are example
servers in adopt mode sharing one Redis; neither is sticky. Checks:

- initialize, tools/list, several whoami and admin_echo calls all succeed,
  with one session id throughout, for alice;
- the session's requests really reached both replicas (tools/call on each);
- after the client closes (its DELETE, on whichever replica), the session id
  answers 404 on both replicas.

Exits 0 when every check passes, 1 on any mismatch, 2 when the SDK is missing.
Needs `pip install 'mcp==2.3.0'`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

try:
    import httpx2 as httpx  # what mcp 2.x uses
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
except ImportError as error:  # pragma: no cover
    print(f"MISSING: the MCP Python SDK is not installed ({error}); pip install 'mcp==2.3.0'")
    sys.exit(2)

from checks import check, guarded, text_of, verdict


class Alternating(httpx.AsyncBaseTransport):
    """Sends each request to the next of the replicas, round robin."""

    def __init__(self, urls: list[str]) -> None:
        self.targets = [httpx.URL(u) for u in urls]
        self.inner = httpx.AsyncHTTPTransport()
        self.sent = 0
        # (replica letter, HTTP method, JSON-RPC method or "-", status)
        self.log: list[tuple[str, str, str, int]] = []

    async def handle_async_request(self, request):
        index = self.sent % len(self.targets)
        self.sent += 1
        target = self.targets[index]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        rpc = "-"
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                rpc = body.get("method", "response") if isinstance(body, dict) else "batch"
            except (ValueError, httpx.RequestNotRead):
                rpc = "?"
        response = await self.inner.handle_async_request(request)
        letter = "AB"[index] if index < 2 else str(index)
        self.log.append((letter, request.method, rpc, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run(url_a: str, url_b: str) -> None:
    transport = Alternating([url_a, url_b])
    headers = {"Authorization": "Bearer alice-token"}
    session_id = None
    async with httpx.AsyncClient(transport=transport, headers=headers, timeout=httpx.Timeout(30.0)) as http:
        async with Client(streamable_http_client(url_a, http_client=http), mode="legacy", cache=None) as client:
            check(client.protocol_version != "2026-07-28", f"handshake era ({client.protocol_version})")
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            admin_tools = ["admin_echo", "revoke_sessions", "set_roles", "whoami"]
            notes_tools = ["notes_append", "notes_create", "notes_delete", "notes_read"]
            check(names == sorted(admin_tools + notes_tools), f"tools/list = {names}")
            seen = set()
            for n in range(6):
                who = await client.call_tool("whoami", {})
                try:
                    me = json.loads(text_of(who))
                except json.JSONDecodeError:
                    me = {}
                check(not who.is_error and me.get("identity_id") == "alice", f"whoami #{n + 1}: alice")
                seen.add(me.get("session_id"))
            check(len(seen) == 1 and None not in seen, f"one session id throughout ({len(seen)} seen)")
            session_id = next(iter(seen)) if len(seen) == 1 else None
            echo = await client.call_tool("admin_echo", {"text": "hi"})
            check(not echo.is_error and text_of(echo) == "hi", "admin_echo (alice is admin)")

    print("requests (replica, HTTP method, JSON-RPC method, status):")
    for entry in transport.log:
        print("   ", *entry)
    calls = Counter(letter for letter, method, rpc, _ in transport.log if rpc == "tools/call")
    check(transport.log[0][:3] == ("A", "POST", "initialize"), "initialize went to A")
    check(calls["A"] > 0 and calls["B"] > 0, f"tools/call reached both replicas {dict(calls)}")
    deletes = [entry for entry in transport.log if entry[1] == "DELETE"]
    check(len(deletes) == 1 and 200 <= deletes[0][3] < 300, f"the client's DELETE succeeded {deletes}")

    # Ended: unknown on both replicas.
    if session_id:
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10.0)) as raw:
            for letter, url in (("A", url_a), ("B", url_b)):
                res = await raw.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                    headers={
                        "mcp-session-id": session_id,
                        "mcp-protocol-version": "2025-06-18",
                        "accept": "application/json, text/event-stream",
                    },
                )
                check(res.status_code == 404, f"after DELETE, replica {letter} answers {res.status_code}")


async def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    await guarded(run(sys.argv[1], sys.argv[2]), 60)
    return verdict()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
