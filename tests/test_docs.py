"""The docs site's own code and rules, without building it (CI builds it: .ci/run, mkdocs build --strict).

The generated pages cover every command, option and output column; the tutorials are stored without
outputs and linked from the pages; the offline check catches a CDN script; prose doctests become code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("hooks")


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:") :]
    return re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.(?:md|ipynb))\s*$", nav, flags=re.MULTILINE)


def test_every_nav_page_exists_or_is_generated():
    pages = _nav_pages()
    assert "cli.md" in pages and "columns.md" in pages and "reproduction/report.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file() and p not in hooks.GENERATED]
    assert not missing
    assert not [p for p in hooks.GENERATED if (DOCS / p).exists()]  # generated, never a stale copy


def test_tutorials_are_stored_without_outputs_and_linked():
    notebooks = sorted((DOCS / "tutorials").glob("*.ipynb"))
    assert len(notebooks) == 3
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code), path.name
        target = f"tutorials/{path.name}"
        assert target in _nav_pages()
        assert target in (DOCS / "index.md").read_text()
        assert path.name in (DOCS / "tutorials" / "index.md").read_text()


def test_cli_page_has_every_command_and_option():
    from stoichgen.cli import build_parser

    page = hooks.cli_markdown()

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        assert name == "stoichgen" or f"`{name}`" in page, name
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child_name, child in action.choices.items():
                    walk(child, f"{name} {child_name}")
            elif action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                label = action.option_strings[-1] if action.option_strings else action.metavar or action.dest
                assert label in page, f"{name}: {label}"

    walk(build_parser(), "stoichgen")
    assert "| `stoichgen screen` |" not in page  # commands are linked from the summary table
    assert "[`stoichgen screen`](#stoichgen-screen)" in page


def test_columns_page_has_every_column():
    from stoichgen.discover.hull_table import HULL_COLUMNS
    from stoichgen.schema import GUIDED_COLUMNS, PAPER_COLUMNS, SCREEN_COLUMNS, VERIFY_COLUMNS

    page = hooks.columns_markdown()
    for column in (*GUIDED_COLUMNS, *PAPER_COLUMNS, *SCREEN_COLUMNS, *VERIFY_COLUMNS):
        assert f"| `{column.name}` |" in page
    for name in HULL_COLUMNS:
        assert f"`{name}`" in page


def test_generate_options_table_is_generated_into_the_generator_page():
    import dataclasses

    from stoichgen.discover.options import METHOD_OPTIONS

    page = (DOCS / "api" / "generator.md").read_text()
    assert [m for m in hooks.SNIPPETS if m in page] == list(hooks.SNIPPETS)
    table = hooks.options_markdown()
    for options in METHOD_OPTIONS.values():
        for f in dataclasses.fields(options):
            assert f"| `{f.name}` |" in table


@pytest.mark.parametrize(
    ("html", "external"),
    [
        ('<script src="https://unpkg.com/x.js"></script>', True),
        ("<link rel=stylesheet href=//fonts.googleapis.com/css>", True),
        ('<img src="../images/hull.png">', False),
        ('<a href="https://www.mkdocs.org/">MkDocs</a>', False),
    ],
)
def test_offline_check(tmp_path: Path, html: str, external: bool):
    (tmp_path / "page.html").write_text(f"<html><body>{html}</body></html>")
    assert bool(hooks.external_assets(tmp_path)) is external


def test_broken_links_are_found(tmp_path: Path):
    (tmp_path / "a.html").write_text(
        '<a href="b.html#x">b</a> <a href="https://x.org/">x</a> <a href="#top">'
    )
    assert hooks.broken_links(tmp_path) == ["a.html: b.html"]
    (tmp_path / "b.html").write_text("")
    assert hooks.broken_links(tmp_path) == []


def test_notebook_links_point_at_built_pages():
    class Page:
        class file:  # noqa: N801 (MkDocs' attribute name)
            src_uri = "tutorials/01_quick_start.ipynb"

    html = (
        '<a href="../columns.md#x">c</a> <a href="02_your_own_data.ipynb">n</a> <a href="https://a.org/b.md">'
    )
    out = hooks.on_page_content(html, Page, None, None)
    assert '<a href="../columns.html#x">' in out and '<a href="02_your_own_data.html">' in out
    assert '<a href="https://a.org/b.md">' in out and '<a href="01_quick_start.ipynb" download>' in out


def test_prose_doctests_become_code_blocks():
    fence = _load("griffe_doctests").fence_doctests
    assert fence("Text.\n>>> 1 + 1\n2\n\nMore.") == "Text.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore."
    assert fence("Args:\n    x: a number.\n\nExamples:\n    >>> 1\n    1") == (
        "Args:\n    x: a number.\n\nExamples:\n    >>> 1\n    1"
    )  # the Google parser's own section is left alone
    assert fence("```python\n>>> not a doctest here\n```") == "```python\n>>> not a doctest here\n```"
