"""Bookkeeping across deliveries of one request: the delivery count, the sent marker, the
per-request lock."""
