"""`python -m emulator`: the same command as `grants emulator`."""

from emulator.cli import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m emulator")
