"""Differences between two revisions, as escaped HTML rows or plain unified text."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import escape

DiffKind = Literal["same", "added", "removed", "header"]
FIELDS_SHOWN = ("title", "audience", "owner", "language", "tags", "questions")


@dataclass(frozen=True)
class DiffLine:
    """One line of a diff: its kind and its text (plain; templates escape it)."""

    kind: DiffKind
    text: str


def revision_text(content: dict[str, Any]) -> list[str]:
    """The lines a diff compares: the front-matter fields, then the body."""
    lines = []
    for name in FIELDS_SHOWN:
        value = content.get(name, "")
        if isinstance(value, list):
            lines.append(f"{name}:")
            lines.extend(f"  - {item}" for item in value)
        else:
            lines.append(f"{name}: {value}")
    lines.append("")
    lines.extend(str(content.get("body", "")).split("\n"))
    return lines


def diff_lines(old: dict[str, Any], new: dict[str, Any], *, context: int = 3) -> list[DiffLine]:
    """A unified diff of two revisions' content.

    Args:
        old: The earlier revision's content.
        new: The later revision's content.
        context: Unchanged lines kept around each change.

    Returns:
        The lines, kinds marking additions and removals (empty when identical).
    """
    result = []
    diff = difflib.unified_diff(revision_text(old), revision_text(new), lineterm="", n=context)
    for number, line in enumerate(diff):
        if number < 2:  # the ---/+++ file header
            continue
        if line.startswith("@@"):
            result.append(DiffLine("header", line))
        elif line.startswith("+"):
            result.append(DiffLine("added", line[1:]))
        elif line.startswith("-"):
            result.append(DiffLine("removed", line[1:]))
        else:
            result.append(DiffLine("same", line[1:]))
    return result


def diff_text(old: dict[str, Any], new: dict[str, Any], *, old_label: str, new_label: str) -> str:
    """A plain unified diff (the command line prints it)."""
    return "\n".join(
        difflib.unified_diff(
            revision_text(old), revision_text(new), old_label, new_label, lineterm=""
        )
    )


def diff_html(lines: list[DiffLine]) -> str:
    """The diff as escaped HTML rows (no raw text from a revision reaches the page)."""
    marks = {"same": " ", "added": "+", "removed": "−", "header": ""}
    rows = [
        f'<tr class="diff-{line.kind}"><td class="diff-mark">{marks[line.kind]}</td>'
        f"<td><code>{escape(line.text)}</code></td></tr>"
        for line in lines
    ]
    return "\n".join(rows)
