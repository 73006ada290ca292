"""Every kombu override lives in `worker/process/broker/` (the guarded channel and transport,
the tracking QoS); they override and call private methods of kombu's Redis transport. If a
kombu release changes one of them, this test fails loudly, naming it, before a worker does.

On failure: read the new kombu code, port `worker/process/broker/` to it, then update the
signatures (and, for the methods whose bodies the overrides copy, the source digests) here and
the pin in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import inspect

import kombu
import pytest
from kombu.transport import redis as kombu_redis

from grant_worker.worker.process.broker import qos, transport

# (class, method): signature as of the tested kombu (pyproject.toml pins its minor version).
EXPECTED_SIGNATURES = {
    # Overridden.
    (kombu_redis.Channel, "_brpop_read"): "(self, **options)",
    (kombu_redis.Channel, "_brpop_start"): "(self, timeout=None)",
    (kombu_redis.Channel, "_get"): "(self, queue)",
    (kombu_redis.Channel, "close"): "(self)",
    (kombu_redis.Channel, "_connparams"): "(self, asynchronous=False)",
    (kombu_redis.SentinelChannel, "_sentinel_managed_pool"): "(self, asynchronous=False)",
    (kombu_redis.QoS, "append"): "(self, message, delivery_tag)",
    (kombu_redis.QoS, "_remove_from_indices"): "(self, delivery_tag, pipe=None)",
    # Called by the overrides.
    (kombu_redis.Channel, "_q_for_pri"): "(self, queue, pri)",
    (kombu_redis.Channel, "_get_message_priority"): "(self, message, reverse=False)",
    (kombu_redis.Channel, "conn_or_acquire"): "(self, client=None)",
    (kombu_redis.Channel, "_flush_brpop_reauth"): "(self)",
    (kombu_redis.Transport, "_deliver"): "(self, message, queue)",
    (kombu_redis.QoS, "pipe_or_acquire"): "(self, pipe=None, client=None)",
}
# Bodies the overrides copy, with something changed: `GuardedChannel._brpop_read` checks the
# item before delivery, `TrackingQoS.append` writes kombu's record in the script that takes the
# item out of the taking list, `TrackingQoS._remove_from_indices` sends an ack outside MULTI.
# Any change to kombu's body must be looked at, not only a changed signature.
COPIED_SOURCE_SHA256 = {
    (kombu_redis.Channel, "_brpop_read"): "c42518699709f2df",
    (kombu_redis.QoS, "append"): "35c655f6ecc62fe6",
    (kombu_redis.QoS, "_remove_from_indices"): "980a109d54ad9136",
}


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


@pytest.mark.parametrize(
    ("owner", "name"),
    list(COPIED_SOURCE_SHA256),
    ids=[f"{owner.__name__}.{name}" for owner, name in COPIED_SOURCE_SHA256],
)
def test_the_copied_kombu_bodies_are_unchanged(owner: type, name: str) -> None:
    source = inspect.getsource(getattr(owner, name))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == COPIED_SOURCE_SHA256[(owner, name)], (
        f"kombu {kombu.__version__} changed {owner.__name__}.{name}, which an override copies"
    )


# Each class of ours in the broker folder, and the kombu class it overrides.
OVERRIDES = [
    (transport.GuardedChannel, kombu_redis.Channel),
    (transport.GuardedSentinelChannel, kombu_redis.SentinelChannel),
    (transport.GuardedTransport, kombu_redis.Transport),
    (transport.GuardedSentinelTransport, kombu_redis.SentinelTransport),
    (qos.TrackingQoS, kombu_redis.QoS),
]


@pytest.mark.parametrize(
    ("ours", "kombus"), OVERRIDES, ids=[ours.__name__ for ours, _kombus in OVERRIDES]
)
def test_every_override_of_a_kombu_method_is_listed_here(ours: type, kombus: type) -> None:
    overridden = {
        name
        for name, value in vars(ours).items()
        # Methods only: nested classes (`QoS = TrackingQoS`) are checked as classes of ours.
        if callable(value) and not isinstance(value, type) and hasattr(kombus, name)
    }
    listed = {name for owner, name in EXPECTED_SIGNATURES if issubclass(kombus, owner)}
    assert overridden <= listed, overridden - listed


def test_every_kombu_subclass_in_the_broker_folder_is_covered() -> None:
    from kombu.transport import virtual

    found = {
        value
        for module in (transport, qos)
        for value in vars(module).values()
        if isinstance(value, type)
        and value.__module__ == module.__name__
        and issubclass(value, virtual.Channel | virtual.Transport | virtual.QoS)
    }
    assert found == {ours for ours, _kombus in OVERRIDES}
