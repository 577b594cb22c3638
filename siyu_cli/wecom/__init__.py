"""WeCom (企业微信) server API: the client, its token cache, callback crypto and events.

Names load lazily (`from siyu_cli.wecom import WecomClient`), so importing the package costs nothing until used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "WecomClient": "siyu_cli.wecom._client",
    "MAX_EXTERNAL": "siyu_cli.wecom._client",
    "MAX_CHATS": "siyu_cli.wecom._client",
    "CallbackCrypto": "siyu_cli.wecom._crypto",
    "CallbackBook": "siyu_cli.wecom._events",
    "WELCOME_WINDOW": "siyu_cli.wecom._events",
    "welcome_code": "siyu_cli.wecom._events",
    "use_welcome_code": "siyu_cli.wecom._events",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
