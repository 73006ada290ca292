"""Exit codes of the `grants` command (docs/design.md, "Exit codes"), in one place."""

EXIT_DONE = 0  # created / exists / updated
EXIT_FAILED = 1  # failed or rejected
EXIT_USAGE = 2  # usage or configuration error
EXIT_TIMEOUT = 3  # timed out waiting
EXIT_BROKER_UNAVAILABLE = 4  # Redis unreachable, out of memory, read-only, loading
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM, after a summary and how to resume
