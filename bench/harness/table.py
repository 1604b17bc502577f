"""Figures printed as aligned text columns."""

from __future__ import annotations


def print_columns(rows: list[list[str]], *, left: int = 1) -> None:
    """``rows`` (the first one the header) as columns two spaces apart, a rule under the header;
    the first ``left`` columns aligned left (names), the others right (figures)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print(
            "  ".join(
                cell.ljust(w) if i < left else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
