"""Write fences on a real Redis: a write whose reply was lost keeps its grant fenced until it
can no longer land, whatever the write (PATCH or DELETE), and the next holder of the grant lock
waits for it before it reads."""

from __future__ import annotations

import time

import pytest
import redis

from grant_worker.tasks.delivery.fences import WriteFences
from grant_worker.tasks.delivery.locks import GrantBusy, GrantLocks
from grant_worker.tasks.errors import FinalError, NetworkError, ReturnToQueue
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import CreateClientGrant

GRANT = CreateClientGrant.model_validate({"client_id": "svc-1", "audience": "https://api/"})
NAMES = ("svc-1", "https://api/", "client")


def _lost_reply() -> None:
    raise NetworkError("DELETE: read timed out", ambiguous=True)


def test_a_lost_reply_fences_the_grant_for_the_landing_window_and_a_definite_answer_does_not(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    fences = WriteFences(redis_client, landing_s=1.0)
    fence = Keys(key_prefix).grant_fence(*NAMES)
    assert fences.write(fence, lambda: "patched") == "patched"
    assert fences.left_s(fence) == 0
    with pytest.raises(FinalError):
        fences.write(fence, lambda: (_ for _ in ()).throw(FinalError("400 Bad Request")))
    with pytest.raises(ReturnToQueue):  # never sent: no slot
        fences.write(fence, lambda: (_ for _ in ()).throw(ReturnToQueue("no slot")))
    assert fences.left_s(fence) == 0
    with pytest.raises(NetworkError):
        fences.write(fence, _lost_reply)  # a DELETE whose reply was lost
    assert 0.5 < fences.left_s(fence) <= 1.0
    # A later definite write takes back its own entry only, not the lost one's.
    fences.write(fence, lambda: None)
    assert fences.left_s(fence) > 0.3
    time.sleep(1.1)
    assert fences.left_s(fence) == 0
    assert not redis_client.exists(fence), "the fence expires with its last entry"


def test_the_next_holder_waits_for_the_fence_and_gives_up_when_it_outlasts_its_wait(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    fences = WriteFences(redis_client, landing_s=0.8)
    locks = GrantLocks(redis_client, keys, ttl_s=5, fences=fences)
    with locks.hold(GRANT, wait_s=1) as held, pytest.raises(NetworkError):
        held.write(_lost_reply)
    with pytest.raises(GrantBusy, match="fenced"), locks.hold(GRANT, wait_s=0.2):
        pass
    started = time.monotonic()
    with locks.hold(GRANT, wait_s=5):
        waited_s = time.monotonic() - started
        assert fences.left_s(keys.grant_fence(*NAMES)) == 0
    assert 0.3 < waited_s < 2.0
