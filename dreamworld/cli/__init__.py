"""The `dreamworld` command: `main.main` dispatches to one module per command group."""
