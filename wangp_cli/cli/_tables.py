"""Plain aligned tables: Rich on a colour terminal, tab-free aligned text otherwise (cheap, greppable)."""

from __future__ import annotations

import sys

from wangp_cli.cli._output import use_color
from wangp_cli.core.safety import clean


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    rows = [[clean(cell) for cell in row] for row in rows]  # a cell never moves the cursor or hides a secret
    if use_color(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # Text: '[red]' in a name is not Rich markup
        Console(force_terminal=True, soft_wrap=not sys.stdout.isatty()).print(table)
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers] + rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
