"""Exit codes of the `grants` command (DESIGN.md), in one place."""

EXIT_DONE = 0  # created / exists / updated
EXIT_FAILED = 1  # failed or rejected
EXIT_USAGE = 2  # usage or configuration error
EXIT_TIMEOUT = 3  # timed out waiting
EXIT_BROKER_UNAVAILABLE = 4  # Redis unreachable, out of memory, read-only, loading
