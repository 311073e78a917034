"""Watch presence with the Python SDK: who is online now, then every change as it happens.

    presence-hub serve &
    python examples/sdk_watch.py http://localhost:8000 "$(presence-hub token alice)"

Optional third argument: stop after that many changes (the tests use it). The client
reconnects and resumes on its own if the hub restarts; a bad token stops it with a clear
error (close code 4001).
"""

from __future__ import annotations

import asyncio
import sys

from hub.clients.ws import connect


async def main(url: str, token: str, stop_after: int | None = None) -> None:
    async with connect(url, token) as hub:
        await hub.set_status(text="watching presence")  # returns once the hub applied it
        for user in (await hub.subscribe("all")).values():
            print(f"now     {user['id']:<16} {user['status']:<8} {user['text']}", flush=True)
        seen = 0
        async for user in hub.changes("all", initial=False):
            print(f"change  {user['id']:<16} {user['status']:<8} {user['text']}", flush=True)
            seen += 1
            if seen == stop_after:
                return


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(f"usage: {sys.argv[0]} HUB_URL TOKEN [STOP_AFTER_N_CHANGES]")
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else None))
