"""Build the objects a worker process needs from `Settings`, once, at the edge."""

from __future__ import annotations

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.activity import ActivityCounter
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.delivery.admission import Admissions
from grant_worker.tasks.delivery.ledger import DeliveryLedger
from grant_worker.tasks.delivery.locks import RequestLocks
from grant_worker.tasks.delivery.shutdown import SHUTDOWN
from grant_worker.tasks.handler import GrantHandler
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.claims import RequestClaims
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.tasks.provision import make_provisioner
from grant_worker.tasks.revoke import make_revoker


def make_handler(settings: Settings, client: redis.Redis | None = None) -> GrantHandler:
    """The request handler of one worker process, sharing one Redis pool and HTTP session."""
    settings.require_auth0()
    client = client or make_redis(settings)
    keys = Keys(settings.grants_key_prefix)
    session = make_session(settings)
    ActivityCounter(client, keys).count_calls_of(session, later=True)
    # A backoff is cut short by SIGTERM: the request goes back to the queue.
    provisioner = make_provisioner(settings, client, session=session, sleep=SHUTDOWN.sleep)
    return GrantHandler(
        provisioner=provisioner,
        # Revokes share the creates' pace, breaker, retry policy, API client and grant locks.
        revoker=make_revoker(settings, provisioner, provisioner.grant_locks),
        recorder=make_recorder(settings, client, count_outcomes_later=True),
        ledger=DeliveryLedger(client, keys, ttl_s=settings.grants_record_ttl_s),
        # Renewed while held, lapsing with the heartbeat when its holder dies; a second
        # delivery waits as long as the first can run.
        locks=RequestLocks(
            client,
            keys,
            ttl_s=settings.grants_heartbeat_ttl_s,
            wait_s=settings.task_hard_time_limit_s,
        ),
        max_deliveries=settings.grants_max_deliveries,
        claims=RequestClaims(client, keys, ttl_s=settings.grants_record_ttl_s),
        shutdown=SHUTDOWN,
        admissions=Admissions(
            client,
            keys,
            lock_ttl_s=settings.grants_heartbeat_ttl_s,
            claim_ttl_s=settings.grants_record_ttl_s,
        ),
    )
