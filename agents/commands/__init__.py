"""The `memwm` subcommands: each parses its flags (tyro reads the signature and docstring), calls
library functions that return values or raise, and prints. `agents/cli.py` turns a raised user
error into one line and exit status 2."""
