"""The HTTP and websocket layer: the only package that imports Starlette."""
