"""A Griffe extension for the API pages: doctest lines outside an ``Examples:`` section become code blocks.

Many docstrings carry a short doctest in their prose (it runs under ``pytest --doctest-modules``);
Markdown would read its ``>>>`` lines as nested quotes. The Google style's ``Examples:`` section is
parsed by mkdocstrings itself and is left alone.

>>> fence_doctests("Text.\\n\\n>>> 1 + 1\\n2\\n\\nMore.")
'Text.\\n\\n```pycon\\n>>> 1 + 1\\n2\\n```\\n\\nMore.'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

SECTION = re.compile(r"^\s*Examples?:\s*$")


def fence_doctests(text: str) -> str:
    """``text`` with each run of doctest lines (from a ``>>>`` line to the next blank line) fenced."""
    lines = text.split("\n")
    out: list[str] = []
    in_doctest = in_fence = False
    indent = 0
    for number, line in enumerate(lines):
        stripped = line.strip()
        if in_doctest and not stripped:
            out.append("```")
            in_doctest = False
        elif not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and not in_doctest and SECTION.match(line):
            out += lines[number:]  # the Google parser formats its Examples section itself
            break
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            indent = len(line) - len(line.lstrip())
            out += ["", "```pycon"] if out and out[-1].strip() else ["```pycon"]
            in_doctest = True
        out.append(line[indent:] if in_doctest and line[:indent].isspace() else line)
    else:
        if in_doctest:
            out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the prose doctests of every object of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or obj.is_alias:
                continue
            seen.add(id(obj))
            if obj.docstring is not None and ">>>" in obj.docstring.value:
                obj.docstring.value = fence_doctests(obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)
