"""The 10-line consumer: every presence change, from Redis pub/sub, with no gap ever.

    python examples/pubsub_consumer.py redis://localhost:6379/0 http://localhost:8000 \
        "$HUB_ADMIN_KEY" [hub:presence]

Prints the users not offline, then one line per change. If its Redis connection drops, it
asks the hub's REST API what changed since its last cursor, so nothing is missed.
"""

import asyncio
import sys

from hub.clients.pubsub import PubSubConsumer


async def main(redis_url: str, hub_url: str, admin_key: str, channel: str = "hub:presence") -> None:
    consumer = PubSubConsumer(redis_url, channel=channel, api_url=hub_url, api_key=admin_key)
    async with consumer as presence:
        async for user in presence.changes():
            print(user["id"], user["status"], user["text"], flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
