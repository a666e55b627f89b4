"""The output formats every command takes (`--output`); apart from output.py so that cli/query.py,
which output.py uses, can name them too."""

from __future__ import annotations

from enum import StrEnum


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    TEXT = "text"  # the AWS CLI's text format (cli/query.py), for scripts: --query X --output text
