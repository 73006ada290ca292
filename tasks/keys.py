"""Every Redis key and stream name grant-worker writes, built from the configured prefix, and
the names of kombu's own keys the project reads or checks.

Nothing else in the project spells a key (tests/unit/test_key_names.py keeps it so): a reader
of this file sees the whole footprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_PREFIX = "grants:"


@dataclass(frozen=True)
class Keys:
    """Names under one prefix (`GRANTS_KEY_PREFIX`)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def pattern(self) -> str:
        """Matches every key under the prefix (SCAN's MATCH, an ACL's `~pattern`)."""
        return f"{self.prefix}*"

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
    def pace(self) -> str:
        """Shared pace state (next free slot, pause-until)."""
        return f"{self.prefix}pace"

    def outcome_record(self, request_id: str) -> str:
        """The recorded outcome of one request: its presence means "done, do not call again".

        A short pointer (status, results entry id, fingerprint; `tasks.outcomes.records`), not
        the outcome: the results stream holds that."""
        return f"{self.prefix}outcome:{request_id}"

    def deliveries(self, request_id: str) -> str:
        """How many times a request has been delivered to a worker (for `poison`)."""
        return f"{self.prefix}deliveries:{request_id}"

    def sent(self, request_id: str) -> str:
        """Marker: a create call for this request may have reached Auth0."""
        return f"{self.prefix}sent:{request_id}"

    def heartbeat(self, identity: str) -> str:
        """A worker process's liveness record (`identity` is `hostname/boot`, one per life of
        one process, as in the register `workers`): what its watchdog saw at its last beat."""
        return f"{self.prefix}heartbeat:{identity}"

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

    def batch(self, batch_id: str) -> str:
        """A batch's ledger: total, queued, and counts by state (`tasks.outcomes.batches`)."""
        return f"{self.prefix}batch:{batch_id}"

    def batch_rows(self, batch_id: str) -> str:
        """A batch's requests and the state of each (queued, or how it ended)."""
        return f"{self.prefix}batch-rows:{batch_id}"

    @property
    def batches(self) -> str:
        """Sorted set of batch ids by last activity (epoch seconds)."""
        return f"{self.prefix}batches"

    # -- outcome correctness and recovery ----------------------------------------------------

    def claim(self, request_id: str) -> str:
        """The request a request id was first used for (fingerprint and normalised request),
        while it is in flight: deleted when its outcome is recorded, which keeps the
        fingerprint."""
        return f"{self.prefix}claim:{request_id}"

    def grant_lock(self, owner: str, audience: str, subject_type: str) -> str:
        """Held while one request reads and PATCHes a grant (owner = client_id or default_for).

        Hashed: an audience is a URL, and the key must stay short and printable.
        """
        return f"{self.prefix}grant-lock:{_grant_digest(owner, audience, subject_type)}"

    def grant_fence(self, owner: str, audience: str, subject_type: str) -> str:
        """The writes to a grant that may still land (`tasks.delivery.fences`): a sorted set
        of write tokens scored by the Redis time (ms) each may land until."""
        return f"{self.prefix}grant-fence:{_grant_digest(owner, audience, subject_type)}"

    @property
    def workers(self) -> str:
        """Set of the registered worker identities, `hostname/boot` (`tasks.fleet`)."""
        return f"{self.prefix}workers"

    def held(self, hostname: str) -> str:
        """Set of the delivery tags a worker of an earlier release held unacknowledged; read and
        deleted only (a worker's tags now bear its mark in kombu's `unacked_index`)."""
        return f"{self.prefix}held:{hostname}"

    def taking(self, identity: str) -> str:
        """List of the messages a worker has just taken off the queue and not yet recorded as
        unacknowledged (`worker.process.broker.transport`): a kill in between finds them here."""
        return f"{self.prefix}taking:{identity}"

    def recovering(self, hostname: str) -> str:
        """Held by the one surviving worker that restores a lapsed worker's messages."""
        return f"{self.prefix}recovering:{hostname}"

    # -- the operator's dashboard ------------------------------------------------------------

    def activity(self, epoch_minute: int) -> str:
        """Per-second counters of one minute (outcomes by status, Auth0 calls, 429s), for the
        dashboard's charts; a hash `{second}:{series}` → count that expires after a while."""
        return f"{self.prefix}activity:{epoch_minute}"

    def dashboard_session(self, session_id: str) -> str:
        """One dashboard login (hash: created_s, token fingerprint, csrf, notice); expires when
        idle, deleted at logout (`worker.dashboard.sessions`)."""
        return f"{self.prefix}dashboard:session:{session_id}"

    def dashboard_login_failures(self, who: str) -> str:
        """Failed dashboard logins in the current window, of one client address or `*` for
        all (a counter that expires with the window)."""
        return f"{self.prefix}dashboard:login-failures:{who}"

    def request_markers(self, request_id: str) -> tuple[str, str]:
        """Per-request bookkeeping deleted once the request's outcome is recorded."""
        return (self.deliveries(request_id), self.sent(request_id))

    def readiness_probe(self, hostname: str) -> str:
        """Written (10 s) by a worker's `/readyz`: proof that Redis takes writes."""
        return f"{self.prefix}readyz:{hostname}"

    def doctor_probe(self, token: str) -> str:
        """Written and deleted at once by `grants doctor` to test the rights under the prefix."""
        return f"{self.prefix}doctor:{token}"

    def doctor_probe_stream(self, token: str) -> str:
        """The stream `grants doctor` adds one entry to (and deletes) beside `doctor_probe`."""
        return f"{self.doctor_probe(token)}:stream"

    @property
    def control_exchange(self) -> str:
        """Celery's remote-control exchange (`celery inspect`) of this deployment; kombu keeps
        its bindings as `_kombu.binding.{control_exchange}.pidbox` (outside the prefix)."""
        return f"{self.prefix}celery"

    @property
    def control_pidbox(self) -> str:
        """kombu's name for the remote-control exchange's mailbox (channel and binding)."""
        return f"{self.control_exchange}.pidbox"

    @staticmethod
    def kombu_binding(queue: str) -> str:
        """kombu's set of the bindings of `queue` (outside the prefix)."""
        return f"_kombu.binding.{queue}"

    @property
    def breaker(self) -> str:
        """The fleet's circuit breaker (hash: state, cause, since, next_probe_at, …)."""
        return f"{self.prefix}breaker"

    def probe(self, hostname: str) -> str:
        """A worker's small expiring write that shows Redis takes its writes (broker faults)."""
        return f"{self.prefix}probe:{hostname}"


def _grant_digest(owner: str, audience: str, subject_type: str) -> str:
    # An audience is a URL: the key names a hash of Auth0's uniqueness key, short and printable.
    return hashlib.sha256(f"{owner}\n{audience}\n{subject_type}".encode()).hexdigest()[:32]
