#!/usr/bin/env python3
"""Checks the example server's notes tools (handles) with the official MCP Python SDK.

usage: notes_client.py URL --check flows|expiry [--wait SECONDS]

`flows` runs, in `mode="legacy"` (initialize handshake, a session) and in
`mode="2026-07-28"` (sessionless):
  alice creates a notes buffer, appends two texts, reads them back in order
  (joined with a newline); bob, given alice's handle, gets the same error as
  for a handle nobody minted, and changes nothing; the handle made in one mode
  works in the other (it is bound to alice, not to a session); a handle sent
  as `Mcp-Session-Id` is refused; alice deletes it, and it is gone.

`expiry` (against a server started with a short `--timeout-secs`): alice
creates a handle and leaves it idle for `--wait` seconds (in legacy mode her
session is kept alive meanwhile by other calls); reading it then says it has
expired and names notes_create; bob asking for it still gets "does not exist".

Exits 0 when every check passes, 1 on any mismatch, 2 when the SDK is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import time

try:
    import httpx2 as httpx  # what mcp 2.x uses
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

try:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
except ImportError as error:  # pragma: no cover
    print(f"MISSING: the MCP Python SDK is not installed ({error}); pip install 'mcp==2.3.0'")
    sys.exit(2)

from checks import check, guarded, text_of, verdict

HANDLE = re.compile(r"^h_[0-9a-f]{64}$")
MODES = ["legacy", "2026-07-28"]
TOKENS = {"alice": "alice-token", "bob": "bob-token"}

def json_of(result) -> dict:
    try:
        return json.loads(text_of(result))
    except json.JSONDecodeError:
        return {}


def masked(message: str) -> str:
    """The message with the (redacted) handle it shows blanked out."""
    return re.sub(r"h_[0-9a-f]{8}…", "h_…", message)


class User:
    """One caller's SDK client in one mode."""

    def __init__(self, url: str, mode: str, user: str):
        self.url, self.mode, self.user = url, mode, user

    async def __aenter__(self):
        headers = {"Authorization": f"Bearer {TOKENS[self.user]}"}
        self.http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0))
        await self.http.__aenter__()
        transport = streamable_http_client(self.url, http_client=self.http)
        self.client = Client(transport, mode=self.mode, cache=None)
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.client.__aexit__(*exc)
        await self.http.__aexit__(*exc)

    async def call(self, tool: str, args: dict):
        return await self.client.call_tool(tool, args)


async def flows(url: str, mode: str, other_mode: str) -> None:
    tag = f"[{mode}]"
    async with User(url, mode, "alice") as alice, User(url, mode, "bob") as bob:
        created = await alice.call("notes_create", {})
        handle = json_of(created).get("handle", "")
        check(not created.is_error and HANDLE.match(handle) is not None, f"{tag} notes_create returns a handle ({handle[:10]}…)")
        for text in ("one", "two"):
            appended = await alice.call("notes_append", {"handle": handle, "text": text})
            check(not appended.is_error, f"{tag} notes_append {text!r}")
        read = await alice.call("notes_read", {"handle": handle})
        check(json_of(read).get("text") == "one\ntwo", f"{tag} notes_read = {json_of(read).get('text')!r}")

        # bob holds alice's handle: exactly what a made-up handle gets.
        made_up = "h_" + secrets.token_hex(32)
        for tool, args in (("notes_read", {}), ("notes_append", {"text": "bob was here"}), ("notes_delete", {})):
            stolen = await bob.call(tool, {"handle": handle, **args})
            unknown = await bob.call(tool, {"handle": made_up, **args})
            check(stolen.is_error and unknown.is_error, f"{tag} bob {tool} on alice's handle: isError")
            check(
                masked(text_of(stolen)) == masked(text_of(unknown)) and "does not exist" in text_of(stolen),
                f"{tag} bob {tool}: same message as an unknown handle: {text_of(stolen)!r}",
            )
            check(handle not in text_of(stolen), f"{tag} bob {tool}: the message does not repeat the handle")
        read = await alice.call("notes_read", {"handle": handle})
        check(json_of(read).get("text") == "one\ntwo", f"{tag} bob changed nothing")

        # The same handle from a client in the other era.
        async with User(url, other_mode, "alice") as elsewhere:
            appended = await elsewhere.call("notes_append", {"handle": handle, "text": "three"})
            check(not appended.is_error, f"{tag} the handle works from a {other_mode} client")
        read = await alice.call("notes_read", {"handle": handle})
        check(json_of(read).get("text") == "one\ntwo\nthree", f"{tag} its append is there")

        # A handle is no session id.
        answer = await alice.http.post(
            url,
            headers={
                "Mcp-Session-Id": handle,
                "MCP-Protocol-Version": "2025-11-25",
                "Accept": "application/json, text/event-stream",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "notes_read", "arguments": {"handle": handle}}},
        )
        check(answer.status_code in (400, 404), f"{tag} a handle as Mcp-Session-Id is refused ({answer.status_code})")

        deleted = await alice.call("notes_delete", {"handle": handle})
        check(not deleted.is_error and json_of(deleted).get("deleted") is True, f"{tag} notes_delete")
        gone = await alice.call("notes_read", {"handle": handle})
        check(gone.is_error and "does not exist" in text_of(gone), f"{tag} deleted: {text_of(gone)!r}")


async def expiry(url: str, mode: str, wait: float) -> None:
    tag = f"[{mode}]"
    async with User(url, mode, "alice") as alice, User(url, mode, "bob") as bob:
        handle = json_of(await alice.call("notes_create", {})).get("handle", "")
        await alice.call("notes_append", {"handle": handle, "text": "soon gone"})
        keep = await alice.call("notes_create", {})
        check(not keep.is_error, f"{tag} two handles created")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # Other calls meanwhile (they keep a legacy session alive) touch
            # neither handle.
            await alice.call("whoami", {})
            await bob.call("whoami", {})
            await asyncio.sleep(0.3)
        expired = await alice.call("notes_read", {"handle": handle})
        message = text_of(expired)
        check(expired.is_error and "has expired" in message and "notes_create" in message, f"{tag} owner told it expired: {message!r}")
        probe = await bob.call("notes_read", {"handle": handle})
        check(probe.is_error and "does not exist" in text_of(probe), f"{tag} bob told it does not exist: {text_of(probe)!r}")
        fresh = json_of(await alice.call("notes_create", {})).get("handle", "")
        read = await alice.call("notes_read", {"handle": fresh})
        check(not read.is_error and json_of(read).get("text") == "", f"{tag} a new one works")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--check", choices=["flows", "expiry"], required=True)
    parser.add_argument("--wait", type=float, default=4.0)
    args = parser.parse_args()
    for mode, other in zip(MODES, reversed(MODES)):
        if args.check == "flows":
            await guarded(flows(args.url, mode, other), 90, f"[{mode}] ")
        else:
            await guarded(expiry(args.url, mode, args.wait), 90, f"[{mode}] ")
    return verdict()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
