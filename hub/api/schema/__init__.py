"""The typed shapes of every REST body, query and answer (msgspec Structs).

The handlers decode into these and encode from them, and ``/openapi.json`` is generated
from them (:mod:`hub.api.openapi`), so the document cannot drift from the code.
"""
