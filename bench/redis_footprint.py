"""Bytes of Redis each request leaves behind, at default settings. Goal: ≤ 600 B per request.

    .venv/bin/python bench/redis_footprint.py [--requests 500]

Run by hand against the Redis at REDIS_URL (default redis://127.0.0.1:6379/0). A real worker
process on the in-process emulator works `--requests` requests (all `created`, the common
case) under a key prefix and queue of the bench's own; then every key the deployment holds is
measured with MEMORY USAGE and grouped by kind. The baseline, measured in the same run, is the
outcome JSON itself (what the contract obliges the results stream to carry): the ratio says how
much the rest (keys, stream overhead, markers) adds to it. Everything is deleted afterwards.
Exit code 1 when the goal is missed.

Where the bytes go (Redis 7.0, default stream-node-max-bytes 4096), for a `created` request
with a 395-B outcome JSON: its results entry, about 528 B (the contract: the outcome JSON plus
the flat `request_id` and `status`, and the stream's listpack overhead); its outcome record,
120 B (a pointer of about 26 characters under `{prefix}outcome:{id}`; `tasks.outcomes.records`);
its batch row, 34 B. The results entry and batch row alone come to about 562 B, which leaves
under 40 B for the record, while any key of its own costs at least 88 B in MEMORY USAGE (a
one-byte value under a short name): the goal cannot be met with a per-request record, and the
record is what answers a redelivery without a call for `GRANTS_RECORD_TTL_S`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
from collections import defaultdict

import redis

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import running_emulator
from grant_worker.tasks.connections import delete_deployment
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess

GOAL_BYTES = 600
AUDIENCE = "https://api.example.com/"


def kind_of(key: str, prefix: str) -> str:
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    return re.split(r"[:]", rest, maxsplit=1)[0] if ":" in rest else rest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with running_emulator() as emulator:
        # Defaults everywhere (record TTL, stream cap, ...) but names of the bench's own.
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=redis_url,
            auth0_domain=emulator.base_url,
            auth0_client_id=emulator.client_id,
            auth0_client_secret=emulator.client_secret,
            grants_key_prefix=f"bench-{tag}:",
            grants_queue=f"bench-{tag}",
            grants_rate_limit=0,
        )
        try:
            with WorkerProcess(settings), GrantClient(settings) as grants:
                ids = grants.submit_many(
                    {
                        "request_id": f"bench-{tag}-{n:06d}",
                        "grant": {
                            "client_id": f"svc-{n % 5000:05d}",
                            "audience": AUDIENCE,
                            "scope": ["read:orders"],
                        },
                        "batch_id": f"bench-{tag}",
                    }
                    for n in range(args.requests)
                )
                outcomes = list(grants.wait_many(ids, timeout_s=300))
            by_kind: dict[str, int] = defaultdict(int)
            counts: dict[str, int] = defaultdict(int)
            for key in client.scan_iter(Keys(settings.grants_key_prefix).pattern, count=1000):
                kind = kind_of(key, settings.grants_key_prefix)
                by_kind[kind] += int(client.memory_usage(key, samples=0) or 0)
                counts[kind] += 1
        finally:
            delete_deployment(client, settings)
    total = sum(by_kind.values())
    per_request = total / args.requests
    payload = sum(len(o.to_json()) for o in outcomes) / len(outcomes)
    print(f"{args.requests} requests, statuses {sorted({o.status for o in outcomes})}")
    for kind in sorted(by_kind, key=by_kind.__getitem__, reverse=True):
        print(
            f"  {kind:<16} {counts[kind]:>6} keys {by_kind[kind]:>10} B "
            f"{by_kind[kind] / args.requests:>8.0f} B/request"
        )
    print(f"baseline: outcome JSON {payload:.0f} B/request")
    contract = by_kind.get("results", 0) / args.requests
    print(
        f"results stream (the contract) {contract:.0f} B/request "
        f"({contract / payload:.2f}x the outcome JSON); "
        f"everything else {per_request - contract:.0f} B/request"
    )
    print(
        f"total {total} B = {per_request:.0f} B/request "
        f"({per_request / payload:.2f}x the outcome JSON; goal {GOAL_BYTES} B: "
        f"{'met' if per_request <= GOAL_BYTES else 'MISSED'})"
    )
    return 0 if per_request <= GOAL_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
