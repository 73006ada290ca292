"""`python -m grant_worker.emulator`: the same command as `grants emulator`."""

from grant_worker.emulator.cli import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m grant_worker.emulator")
