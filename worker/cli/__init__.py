"""The `grants` command: the group and its registration in `main`, one module per command or
command group, shared helpers in `base`. No command module imports the group back.
"""
