"""Terminal output shared by the commands: result tables."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_table(title: str, rows: dict, console: Console | None = None) -> None:
    """Print a two-column table of names and values."""
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for name, value in rows.items():
        table.add_row(str(name), str(value))
    (console or Console()).print(table)
