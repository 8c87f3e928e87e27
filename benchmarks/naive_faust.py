"""(b) What a user would write: a Faust agent scoring each event with River's HalfSpaceTrees
and awaiting ``topic.send`` per event, as Faust's and River's docs show.

``python -m benchmarks.naive_faust worker -l info`` with BENCH_BOOTSTRAP, BENCH_IN, BENCH_OUT,
BENCH_APP and BENCH_WEB_PORT in the environment.
"""

from __future__ import annotations

import os
from typing import Any

import faust
from river import anomaly

env = os.environ
app = faust.App(
    env.get("BENCH_APP", "bench-naive"),
    broker=f"kafka://{env.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    value_serializer="json",
    store="memory://",
    web_port=int(env.get("BENCH_WEB_PORT", "6099")),
    web_in_thread=False,
    datadir=env.get("BENCH_DATADIR", "/tmp/bench-naive"),
    consumer_auto_offset_reset="earliest",
    # The embedded broker joins groups in half the session timeout.
    broker_session_timeout=3.0,
    broker_heartbeat_interval=0.5,
)
events_topic = app.topic(env.get("BENCH_IN", "bench.events"), key_type=bytes, key_serializer="raw")
scores_topic = app.topic(env.get("BENCH_OUT", "bench.scores"), key_type=bytes, key_serializer="raw")
models: dict[str, anomaly.HalfSpaceTrees] = {}


@app.agent(events_topic)
async def score(stream: Any) -> None:
    async for event in stream.events():
        msg = event.message
        values = event.value if isinstance(event.value, list) else [event.value]
        for i, ev in enumerate(values):
            model = models.get(ev["stream"])
            if model is None:
                model = models[ev["stream"]] = anomaly.HalfSpaceTrees(seed=42)
            x = {"value": ev["value"]}
            s = model.score_one(x)
            model.learn_one(x)
            await scores_topic.send(key=msg.key, value={
                "stream": ev["stream"], "ts": ev["ts"], "score": s,
                "source": {"topic": msg.topic, "partition": msg.partition,
                           "offset": msg.offset, "index": i},
            })


if __name__ == "__main__":
    app.main()
