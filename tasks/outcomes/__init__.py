"""How a request ends: its one recorded outcome, and typed reads of the streams."""
