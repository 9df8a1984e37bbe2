#!/usr/bin/env python3
"""Checks the example server (examples/server/) with the official MCP Python SDK.

usage: sdk_client.py URL [--mode legacy|auto|2026-07-28|both|all] [--session-ids hex|any]

For each mode it connects as alice (admin, reader) and as bob (reader) with
the SDK's streamable HTTP client and bearer auth, lists the tools, calls
`whoami` and `admin_echo`, and checks that a caller without a token is
refused. `legacy` speaks the initialize handshake: whoami must show a session
id (64 lowercase hex characters with `--session-ids hex`, the default, as the
server mints them in its default mode). `auto` probes `server/discover`: the
server speaks 2026-07-28, so the calls are sessionless and whoami shows
`session_id: null`. `2026-07-28` adopts that revision directly (no probe).
`both` runs legacy and auto; `all` runs legacy, auto and 2026-07-28.

Tool-level authorization (the server's PolicyLayer, examples/policy.toml):
bob's tools/list holds only `whoami` and the notes tools, and his `admin_echo` call is refused
with a JSON-RPC error naming the role, surfaced by the SDK as an exception;
alice sees and calls every tool.

Exits 0 when every check passes, 1 on any mismatch, 2 when the SDK is missing.
Needs `pip install 'mcp==2.3.0'` (the SDK release with `mode=`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

try:
    import httpx2 as httpx  # what mcp 2.x uses
except ImportError:  # pragma: no cover - older SDKs
    try:
        import httpx  # type: ignore[no-redef]
    except ImportError:
        httpx = None  # type: ignore[assignment]

try:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
except ImportError as error:  # pragma: no cover
    print(f"MISSING: the MCP Python SDK is not installed ({error}); pip install 'mcp==2.3.0'")
    sys.exit(2)

from checks import check, guarded, text_of, verdict

if httpx is None:  # pragma: no cover
    print("MISSING: neither httpx2 nor httpx is installed (the MCP SDK needs one)")
    sys.exit(2)

HEX64 = re.compile(r"^[0-9a-f]{64}$")
SESSIONLESS_VERSION = "2026-07-28"

USERS = {
    "alice": {
        "token": "alice-token",
        "name": "Alice",
        "roles": ["admin", "reader"],
        "tools": [
            "admin_echo",
            "notes_append",
            "notes_create",
            "notes_delete",
            "notes_read",
            "revoke_sessions",
            "set_roles",
            "whoami",
        ],
    },
    # The policy hides the admin tools from bob.
    "bob": {
        "token": "bob-token",
        "name": "Bob",
        "roles": ["reader"],
        "tools": ["notes_append", "notes_create", "notes_delete", "notes_read", "whoami"],
    },
}

def client_for(url: str, mode: str, http_client) -> Client:
    return Client(
        streamable_http_client(url, http_client=http_client),
        mode=mode,
        cache=None,  # every call must reach the server
    )


async def run_user(url: str, mode: str, user: str, session_ids: str) -> None:
    info = USERS[user]
    headers = {"Authorization": f"Bearer {info['token']}"}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0)) as http:
        async with client_for(url, mode, http) as client:
            version = client.protocol_version
            print(f"[{mode}] {user}: negotiated protocol version {version}")
            if mode != "legacy":
                check(version == SESSIONLESS_VERSION, f"[{mode}] {user}: speaks {SESSIONLESS_VERSION}")
            else:
                check(version != SESSIONLESS_VERSION, f"[{mode}] {user}: legacy mode uses the handshake")

            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            check(names == info["tools"], f"[{mode}] {user}: tools/list = {names} (policy-filtered)")

            who = await client.call_tool("whoami", {})
            check(not who.is_error, f"[{mode}] {user}: whoami succeeds")
            try:
                me = json.loads(text_of(who))
            except json.JSONDecodeError:
                me = {}
            check(me.get("identity_id") == user, f"[{mode}] {user}: whoami identity_id = {me.get('identity_id')!r}")
            check(
                me.get("identity_name") == info["name"],
                f"[{mode}] {user}: whoami identity_name = {me.get('identity_name')!r}",
            )
            check(me.get("roles") == info["roles"], f"[{mode}] {user}: whoami roles = {me.get('roles')!r}")
            sid = me.get("session_id", "absent")
            if mode != "legacy":
                check(sid is None, f"[{mode}] {user}: sessionless, session_id = {sid!r}")
            elif session_ids == "hex":
                check(
                    isinstance(sid, str) and HEX64.match(sid) is not None,
                    f"[{mode}] {user}: session_id is 64 lowercase hex ({str(sid)[:8]}…)",
                )
            else:
                check(isinstance(sid, str) and sid != "", f"[{mode}] {user}: session_id present ({str(sid)[:8]}…)")

            # The session is stable across calls.
            again = await client.call_tool("whoami", {})
            try:
                sid_again = json.loads(text_of(again)).get("session_id", "absent")
            except json.JSONDecodeError:
                sid_again = "unparsable"
            check(sid_again == sid, f"[{mode}] {user}: second whoami keeps the same session")

            if "admin" in info["roles"]:
                echo = await client.call_tool("admin_echo", {"text": "hello from " + user})
                check(not echo.is_error, f"[{mode}] {user}: admin_echo allowed")
                check(text_of(echo) == "hello from " + user, f"[{mode}] {user}: admin_echo echoes")
            else:
                # The policy layer answers with a JSON-RPC error: the SDK raises it.
                try:
                    echo = await client.call_tool("admin_echo", {"text": "hello from " + user})
                except Exception as error:  # noqa: BLE001 - the SDK's error type varies by version
                    message = str(getattr(getattr(error, "error", None), "message", None) or error)
                    check(True, f"[{mode}] {user}: admin_echo refused as an error ({type(error).__name__})")
                    check(
                        "tool `admin_echo` requires role `admin`" in message,
                        f"[{mode}] {user}: refusal says what is missing: {message!r}",
                    )
                else:
                    check(False, f"[{mode}] {user}: admin_echo refused, got {echo!r}")


async def run_anonymous(url: str, mode: str) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
        try:
            async with client_for(url, mode, http) as client:
                await client.list_tools()
        except BaseException as error:  # noqa: BLE001 - any refusal will do
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            check(True, f"[{mode}] no token: refused ({type(error).__name__})")
            return
    check(False, f"[{mode}] no token: refused")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["legacy", "auto", SESSIONLESS_VERSION, "both", "all"], default="all")
    parser.add_argument("--session-ids", choices=["hex", "any"], default="hex")
    args = parser.parse_args()

    modes = {
        "both": ["legacy", "auto"],
        "all": ["legacy", "auto", SESSIONLESS_VERSION],
    }.get(args.mode, [args.mode])
    for mode in modes:
        for user in ("alice", "bob"):
            await guarded(run_user(args.url, mode, user, args.session_ids), 60, f"[{mode}] {user}: ")
        await guarded(run_anonymous(args.url, mode), 60, f"[{mode}] no token: ")
    return verdict()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
