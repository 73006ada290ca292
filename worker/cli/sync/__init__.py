"""`grants sync`: the command, its pure plan, and the run that enqueues and follows it."""
