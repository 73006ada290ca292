"""Every Redis key and stream name grant-worker writes, built from the configured prefix.

Nothing else in the project spells a key: a reader of this file sees the whole footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "grants:"


@dataclass(frozen=True)
class Keys:
    """Names under one prefix (`GRANTS_KEY_PREFIX`)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def results(self) -> str:
        """Stream of every outcome (the record)."""
        return f"{self.prefix}results"

    @property
    def dead(self) -> str:
        """Stream of failed and rejected outcomes with the original request."""
        return f"{self.prefix}dead"

    @property
    def events(self) -> str:
        """Pub/sub channel mirroring the results stream for live listeners."""
        return f"{self.prefix}events"

    @property
    def intake(self) -> str:
        """Stream of plain-JSON requests from producers that speak no Celery."""
        return f"{self.prefix}intake"

    @property
    def intake_group(self) -> str:
        """Consumer group of the workers' intake bridge on the intake stream."""
        return f"{self.prefix}bridge"

    @property
    def governor(self) -> str:
        """Shared rate governor state (next free slot, pause-until)."""
        return f"{self.prefix}governor"

    def outcome_record(self, request_id: str) -> str:
        """The recorded outcome of one request: its presence means "done, do not call again"."""
        return f"{self.prefix}outcome:{request_id}"

    def deliveries(self, request_id: str) -> str:
        """How many times a request has been delivered to a worker (for `poison`)."""
        return f"{self.prefix}deliveries:{request_id}"

    def sent(self, request_id: str) -> str:
        """Marker: a create call for this request may have reached Auth0."""
        return f"{self.prefix}sent:{request_id}"

    def heartbeat(self, hostname: str) -> str:
        """A worker's liveness record: last time its consumer took or polled a message."""
        return f"{self.prefix}heartbeat:{hostname}"

    def lock(self, request_id: str) -> str:
        """Held while one delivery of a request is being worked on."""
        return f"{self.prefix}lock:{request_id}"

    @property
    def unacked(self) -> str:
        """kombu's hash of delivered, unacknowledged messages (ours, not the shared default)."""
        return f"{self.prefix}unacked"

    @property
    def unacked_index(self) -> str:
        """kombu's index of `unacked` by delivery time, scanned for visibility timeouts."""
        return f"{self.prefix}unacked_index"

    @property
    def unacked_mutex(self) -> str:
        return f"{self.prefix}unacked_mutex"

    def probe(self, hostname: str) -> str:
        """A worker's small expiring write that shows Redis takes its writes (broker faults)."""
        return f"{self.prefix}probe:{hostname}"
