"""What runs, by role: `process/` (the Celery worker process), `client/` (what producers
import), `cli/` (the `grants` command) and `dashboard/` (the operator's web page).

Imports run one way: the CLI and the dashboard use the client; nothing imports the CLI or the
dashboard; the client never imports the process (import-linter contracts in pyproject.toml).
"""
