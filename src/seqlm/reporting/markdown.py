"""Markdown for the tables of results: a table under its title, a number or a dash."""

from __future__ import annotations


def number(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def md_table(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table under its title line."""
    return [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(r) + " |" for r in rows]
