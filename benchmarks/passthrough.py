"""(a) The ceiling: bare aiokafka consume -> parse JSON -> one small record per event -> commit.

No detection. ``python -m benchmarks.passthrough BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP``
runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def run(bootstrap: str, in_topic: str, out_topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        in_topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=500,
        max_partition_fetch_bytes=4_000_000, fetch_max_wait_ms=100,  # as the worker
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            futures = []
            for tp, msgs in batches.items():
                for m in msgs:
                    doc = orjson.loads(m.value)
                    events = doc if isinstance(doc, list) else [doc]
                    for i, ev in enumerate(events):
                        out = {"stream": ev["stream"], "ts": ev["ts"], "source": {
                            "topic": tp.topic, "partition": tp.partition, "offset": m.offset,
                            "index": i}}
                        futures.append(await producer.send(out_topic, orjson.dumps(out), m.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))
