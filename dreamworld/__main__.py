"""`python -m dreamworld` runs the CLI (torchrun uses this entry)."""

from dreamworld.cli.main import main

main()
