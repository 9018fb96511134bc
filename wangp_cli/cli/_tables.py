"""Plain aligned tables: Rich on a terminal, tab-free aligned text otherwise (cheap, greppable)."""

from __future__ import annotations

import sys

from wangp_cli.cli._output import emit, use_color


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    if use_color(sys.stdout):
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers] + rows:
        emit("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
