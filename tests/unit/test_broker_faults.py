"""What each Redis condition means for a worker, and how URLs map onto the guarded transport."""

from __future__ import annotations

import pytest
import redis

from grant_worker.tasks.broker_faults import classify, is_broker_fault
from grant_worker.tasks.connections import sentinel_addresses
from grant_worker.tasks.delivery.receipt import requeue_delay_s
from grant_worker.worker.process.broker.monitor import BrokerState
from grant_worker.worker.process.broker.transport import broker_url


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (redis.exceptions.OutOfMemoryError("OOM command not allowed"), "transient"),
        (redis.exceptions.ReadOnlyError("READONLY You can't write against a replica"), "transient"),
        (redis.exceptions.BusyLoadingError("LOADING Redis is loading"), "transient"),
        (redis.ResponseError("NOREPLICAS Not enough good replicas to write."), "transient"),
        (redis.ResponseError("MASTERDOWN Link with MASTER is down"), "transient"),
        (redis.ConnectionError("Connection refused"), "transient"),
        (redis.TimeoutError("Timeout reading"), "transient"),
        (redis.AuthenticationError("WRONGPASS invalid username-password pair"), "auth"),
        (redis.ResponseError("NOAUTH Authentication required."), "auth"),
        (redis.ResponseError("NOPERM this user has no permissions"), "auth"),
        (redis.ResponseError("WRONGTYPE Operation against a key"), None),
        (redis.exceptions.NoPermissionError("NOPERM no rights on key"), "auth"),
        (ConnectionResetError("reset by peer"), "transient"),
        (KeyError("exchange"), None),
    ],
)
def test_redis_errors_are_classified(exc: BaseException, kind: str | None) -> None:
    assert classify(exc) == kind


@pytest.mark.parametrize(
    "exc",
    [
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        redis.exceptions.NoScriptError("NOSCRIPT No matching script"),
        redis.exceptions.DataError("Invalid input of type: 'NoneType'"),
        ValueError("a bug"),
    ],
)
def test_errors_that_waiting_cannot_fix_are_not_broker_faults(exc: BaseException) -> None:
    # A delivery that meets one is requeued with a growing pause and counted towards `poison`,
    # never held back as if Redis were away.
    assert not is_broker_fault(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis.ResponseError("NOPERM this user has no permissions to run the 'eval' command"),
        redis.exceptions.NoPermissionError("NOPERM"),
        redis.ConnectionError("Connection refused"),
        OSError("network is unreachable"),
    ],
)
def test_refusals_and_outages_are_broker_faults_for_every_caller(exc: BaseException) -> None:
    assert is_broker_fault(exc)


def test_kombu_wrapping_a_lost_connection_is_a_transient_fault() -> None:
    import kombu.exceptions

    assert classify(kombu.exceptions.OperationalError("Error 111 connecting")) == "transient"


def test_readiness_follows_faults_and_backs_off() -> None:
    state = BrokerState()
    assert state.ready
    state.note_fault(redis.exceptions.OutOfMemoryError("OOM command not allowed"))
    assert not state.ready and state.fault == "OutOfMemoryError: OOM"
    first = state.backoff_s()
    state.note_fault(redis.exceptions.OutOfMemoryError("OOM"))
    assert state.backoff_s() == 2 * first
    state.note_ok()
    assert state.ready and state.fault is None


def test_requeues_back_off_doubling_to_a_cap() -> None:
    assert [requeue_delay_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert requeue_delay_s(50) == 60.0


def test_every_url_form_maps_onto_the_guarded_transport() -> None:
    assert broker_url("redis://h:6379/0") == "grants-redis://h:6379/0"
    assert broker_url("rediss://u:p@h:6380/1") == "grants-rediss://u:p@h:6380/1"
    assert broker_url("sentinel://a:26379;sentinel://b:26379") == (
        "grants-sentinel://a:26379;grants-sentinel://b:26379"
    )


def test_sentinel_urls_name_the_sentinels_and_the_masters_credentials() -> None:
    sentinels, master = sentinel_addresses(
        "sentinel://user:p%40ss@10.0.0.1:26379/2;sentinel://10.0.0.2;sentinel://10.0.0.3:26380"
    )
    assert sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)]
    assert master == {"password": "p@ss", "username": "user", "db": 2}
    with pytest.raises(ValueError, match="sentinel://host:port"):
        sentinel_addresses("sentinel://a:1;redis://b:2")


def test_a_sentinel_url_requires_the_master_name() -> None:
    from pydantic import ValidationError

    from grant_worker.config.settings import Settings

    with pytest.raises(ValidationError, match="GRANTS_SENTINEL_MASTER is required"):
        Settings(_env_file=None, redis_url="sentinel://a:26379")  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url="sentinel://a:26379", grants_sentinel_master="m"
    )
    assert settings.uses_sentinel
