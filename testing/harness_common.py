"""Plumbing shared by the Python test servers in this folder (mcp-python-sdk/server.py
and authlib/server.py): the stdout kept for the ready line, the stdin watch that
stops a server when its parent goes away, the command line checks both make, and
the request counters both publish at /__admin/counts.

Standard library only, since each server imports it from its own venv.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from typing import Any, Callable, TextIO

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# stdout, stdin


def keep_stdout_for_ready_line() -> TextIO:
    """Points sys.stdout at stderr, so that whatever a library prints lands there,
    and returns the real stdout, which then carries the ready line alone."""
    ready_out = sys.stdout
    sys.stdout = sys.stderr
    return ready_out


def announce_ready(ready_out: TextIO, url: str) -> None:
    """Writes the one line a test waits for: `ready URL`."""
    ready_out.write(f"ready {url}\n")
    ready_out.flush()


def watch_stdin(on_end: Callable[[], None]) -> None:
    """Calls on_end, from a daemon thread, once stdin ends (or cannot be read): the
    test holding the other end of the pipe has closed it or has gone away."""

    def watch() -> None:
        try:
            while os.read(0, 65536):
                pass
        except (OSError, ValueError):
            pass
        on_end()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


# ---------------------------------------------------------------------------
# Command line


def non_negative_int(text: str) -> int:
    """An option's value as a number of seconds or a port; usable as an argparse type."""
    if not re.fullmatch(r"\d+", text):
        raise argparse.ArgumentTypeError(f"needs a non-negative integer, got {text!r}")
    return int(text)


def limits_error(port: int, access_token_ttl: int) -> str | None:
    """What is wrong with the options both servers bound, or None."""
    if port > 65535:
        return "--port must be at most 65535"
    if access_token_ttl == 0:
        return "--access-token-ttl must be at least 1"
    return None


# ---------------------------------------------------------------------------
# Request counters (GET /__admin/counts)

# The grant types counted one by one at /token; any other counts as token_other.
TOKEN_GRANTS = ("authorization_code", "refresh_token", "client_credentials")
# RFC 7592 requests on /register/<client_id>, by method.
REGISTER_ITEM_COUNTERS = {"PUT": "updates", "GET": "reads", "DELETE": "deletes"}


def fresh_counts(*extra: str) -> dict[str, Any]:
    """All counters at zero (the EXTRA ones after the common ones), and no requests."""
    counts: dict[str, Any] = {
        "registrations": 0,
        "updates": 0,
        "reads": 0,
        "deletes": 0,
        "token_authorization_code": 0,
        "token_refresh_token": 0,
        "token_client_credentials": 0,
        "token_other": 0,
        "discovery": 0,
    }
    counts.update((name, 0) for name in extra)
    counts["requests"] = []
    return counts


def token_counter(grant_type: str | None) -> str:
    """The counter a POST /token with this grant_type adds to."""
    return f"token_{grant_type}" if grant_type in TOKEN_GRANTS else "token_other"


def counts_snapshot(counts: dict[str, Any]) -> dict[str, Any]:
    """A copy of the counters to answer with, safe from requests still counting."""
    return {**counts, "requests": [dict(r) for r in counts["requests"]]}
