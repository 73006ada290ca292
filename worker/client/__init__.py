"""What producers import: `GrantClient` to submit and read outcomes, dead letters, batch
withdrawal. Nothing here imports the worker process, the CLI or the dashboard.
"""

from grant_worker.worker.client.broker import BrokerUnavailable
from grant_worker.worker.client.grant_client import GrantClient, WaitTimeout

__all__ = ["BrokerUnavailable", "GrantClient", "WaitTimeout"]
