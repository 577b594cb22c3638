"""siyu serve: the ASGI app that takes WeCom's callbacks."""
