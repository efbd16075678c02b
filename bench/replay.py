"""The replay bound: the ceiling for `elt publish` throughput on this machine and receiver.

The same gzip bodies the baseline sends (json.dumps + gzip.compress of each dataset) are
precomputed and held in memory, then POSTed by a minimal httpx.AsyncClient that does no
other work: a fixed number of requests in flight (the same concurrency elt publish is given),
keep-alive connections, a token fetched before the clock starts. Whatever elt publish adds
(reading the pending set, encoding, the journal and the ledger) shows up as the gap between
its throughput and this one.

    python bench/replay.py --datasets work/datasets.pickle --endpoint '{"url":..,"auth":..}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from notebook_baseline import Timer, encode_body, fetch_token, write_result


async def replay(bodies: list[bytes], endpoint: dict[str, Any], concurrency: int,
                 timer: Timer) -> dict[str, Any]:
    """POST every body with `concurrency` requests in flight; the timer covers only sending."""
    url = endpoint["url"].rstrip("/") + "/data"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        token = await fetch_token(client, endpoint["auth"])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}
        queue: Iterator[bytes] = iter(bodies)

        async def worker() -> None:
            for body in queue:  # one shared iterator: each body is sent exactly once
                try:
                    answer = await client.post(url, content=body, headers=headers)
                    code = str(answer.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                statuses[code] = statuses.get(code, 0) + 1

        with timer:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    ok = statuses.get("201", 0) + statuses.get("204", 0)
    return {"sent": sum(statuses.values()), "ok": ok, "failed": sum(statuses.values()) - ok,
            "statuses": statuses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, required=True,
                    help="datasets.pickle written by notebook_baseline.py build")
    ap.add_argument("--endpoint", required=True, help='JSON {"url": ".../v1", "auth": {...}}')
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--result", type=Path, default=None)
    args = ap.parse_args(argv)
    with open(args.datasets, "rb") as f:
        datasets = pickle.load(f)
    bodies = [encode_body(d) for d in datasets]
    del datasets
    timer = Timer()
    stats = asyncio.run(replay(bodies, json.loads(args.endpoint), args.concurrency, timer))
    write_result(args.result, "replay", timer, datasets=len(bodies),
                 body_bytes=sum(map(len, bodies)), concurrency=args.concurrency, **stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
