"""siyu serve: the ASGI app that takes WeCom's callbacks, and the uvicorn glue that runs it."""

from siyu_cli.serve._app import DEFAULT_PATH, app
from siyu_cli.serve._server import serve

__all__ = ["DEFAULT_PATH", "app", "serve"]
