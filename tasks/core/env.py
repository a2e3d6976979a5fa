"""The process environment every tool of the workflow runs with: telemetry off; the cores
this process may use."""

from __future__ import annotations

import os

TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
}
"""Offline, the servers would try to phone home and log errors; a value already set wins."""


def telemetry_off() -> None:
    """Default every tool's telemetry to off in this process's environment."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


PLACEHOLDER = "change-me"
"""The value ``.env.example`` gives every secret: never accepted as one."""


class PlaceholderSecret(ValueError):
    """A secret still holds ``.env.example``'s placeholder."""


def refuse_placeholder(name: str, value: str) -> str:
    """``value``, unless it is (or holds) ``.env.example``'s placeholder.

    Raises
    ------
    PlaceholderSecret
        Naming the variable and how to make a real value.
    """
    if PLACEHOLDER in value.lower():
        raise PlaceholderSecret(
            f"{name} still holds the placeholder '{PLACEHOLDER}' of .env.example: set a real "
            'secret, e.g. python -c "import secrets; print(secrets.token_urlsafe(24))"'
        )
    return value
