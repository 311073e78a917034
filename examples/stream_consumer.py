"""The 10-line stream consumer: every presence change, at least once, acknowledged.

    python examples/stream_consumer.py redis://localhost:6379/0 http://localhost:8000 \
        "$HUB_ADMIN_KEY" [group] [consumer]

Run it twice with the same group and different consumer names: they share the work, and
a batch one of them read but never acknowledged (killed) is taken over by the other.
"""

import asyncio
import sys

from hub.clients.stream import StreamConsumer


async def main(
    redis_url: str, hub_url: str, admin_key: str, group: str = "example", consumer: str = "worker-1"
) -> None:
    async with StreamConsumer(
        redis_url, group, consumer, api_url=hub_url, api_key=admin_key
    ) as changes:
        async for batch in changes:
            for user in batch.users:
                print(batch.id or "snapshot", user["id"], user["status"], flush=True)
            await changes.ack(batch)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
