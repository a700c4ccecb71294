"""Tables for people, JSON for programs: every listing goes through here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from opsflow.secrets import conceal

FORMATS = ("table", "json")


def as_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [as_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """`value` as JSON, every secure value (a stack spec's encrypted environment) masked."""
    click.echo(json.dumps(conceal(as_jsonable(value)), indent=2, sort_keys=False))


def emit_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    table = Table(title=title, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header)
    for row in rows:
        # Text, not str: a cell is shown as is, never read as rich markup ("[bold]").
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    Console(soft_wrap=True).print(table)


def error(message: str) -> None:
    click.echo(f"error: {message}", err=True)
