"""`python -m dreamworld` runs the CLI (torchrun uses this entry)."""

from .cli import main

main()
