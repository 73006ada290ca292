"""The guarded transport overrides and calls private methods of kombu's Redis transport. If a
kombu release changes one of them, this test fails loudly, naming it, before a worker does.

On failure: read the new kombu code, port `worker/transport.py` to it, then update the
signatures (and, for the method whose body the transport copies, the source digest) here and
the pin in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import inspect

import kombu
import pytest
from kombu.transport import redis as kombu_redis

from grant_worker.worker.process.broker import transport

# (class, method): signature as of the tested kombu (pyproject.toml pins its minor version).
EXPECTED_SIGNATURES = {
    # Overridden.
    (kombu_redis.Channel, "_brpop_read"): "(self, **options)",
    (kombu_redis.Channel, "_brpop_start"): "(self, timeout=None)",
    (kombu_redis.Channel, "_get"): "(self, queue)",
    (kombu_redis.Channel, "close"): "(self)",
    (kombu_redis.Channel, "_connparams"): "(self, asynchronous=False)",
    (kombu_redis.SentinelChannel, "_sentinel_managed_pool"): "(self, asynchronous=False)",
    # Called by the overrides.
    (kombu_redis.Channel, "_q_for_pri"): "(self, queue, pri)",
    (kombu_redis.Channel, "_get_message_priority"): "(self, message, reverse=False)",
    (kombu_redis.Channel, "conn_or_acquire"): "(self, client=None)",
    (kombu_redis.Channel, "_flush_brpop_reauth"): "(self)",
    (kombu_redis.Transport, "_deliver"): "(self, message, queue)",
}
# `GuardedChannel._brpop_read` is kombu's body with a check inserted: any change to kombu's
# body must be looked at, not only a changed signature.
COPIED_SOURCE_SHA256 = {"_brpop_read": "c42518699709f2df"}


@pytest.mark.parametrize(
    ("owner", "name", "expected"),
    [(owner, name, sig) for (owner, name), sig in EXPECTED_SIGNATURES.items()],
    ids=[f"{owner.__name__}.{name}" for owner, name in EXPECTED_SIGNATURES],
)
def test_kombu_methods_the_transport_relies_on_keep_their_signature(
    owner: type, name: str, expected: str
) -> None:
    method = getattr(owner, name, None)
    assert method is not None, f"kombu {kombu.__version__}: {owner.__name__}.{name} is gone"
    actual = str(inspect.signature(method))
    assert actual == expected, (
        f"kombu {kombu.__version__} changed {owner.__name__}.{name}{actual} (was {expected}); "
        "port worker/transport.py before raising the pin"
    )


def test_the_copied_brpop_read_body_is_unchanged_in_kombu() -> None:
    source = inspect.getsource(kombu_redis.Channel._brpop_read)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == COPIED_SOURCE_SHA256["_brpop_read"], (
        f"kombu {kombu.__version__} changed Channel._brpop_read, which GuardedChannel copies"
    )


def test_every_override_is_listed_here() -> None:
    overridden = {
        name
        for cls in (transport.GuardedChannel, transport.GuardedSentinelChannel)
        for name, value in vars(cls).items()
        # Methods only: `QoS` is a class of ours (`TrackingQoS`), tested on its own.
        if callable(value)
        and not isinstance(value, type)
        and hasattr(kombu_redis.SentinelChannel, name)
    }
    listed = {name for _owner, name in EXPECTED_SIGNATURES}
    assert overridden <= listed, overridden - listed
