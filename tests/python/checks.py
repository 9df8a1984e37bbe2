"""What the Python SDK clients of the tests share: each check printed as it
is made (`ok` or `FAIL`), the failures counted, and the verdict the Rust
side reads (`all checks passed`, exit 0; else exit 1).

The clients run as scripts from this folder, so `from checks import ...`
finds this module.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable

failures: list[str] = []


def check(condition: bool, what: str) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'}  {what}")
    if not condition:
        failures.append(what)


async def guarded(run: Awaitable[None], timeout: float, label: str = "") -> None:
    """Awaits `run` for at most `timeout` seconds; an exception (the
    timeout's included) is a failed check, named `label` and the error."""
    try:
        await asyncio.wait_for(run, timeout)
    except Exception as error:  # noqa: BLE001
        check(False, f"{label}{type(error).__name__}: {error}")


def text_of(result) -> str:
    """The one text content of a tool's result ("" if not exactly one)."""
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return texts[0] if len(texts) == 1 else ""


def verdict() -> int:
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0
