"""MkDocs hooks: pages generated from the code, so they cannot drift, and a check that the site is offline.

- ``cli.md``: every command and option, read from the argparse parsers (``stoichgen.cli.build_parser``);
- ``columns.md``: every output column, read from the one schema (``stoichgen.schema``) and the
  hull's ``HULL_COLUMNS``;
- the options table of ``Generator.generate`` in ``api/generator.md``, from ``discover.options``;
- rendered notebooks: their links to other pages (``../columns.md``, ``02_your_own_data.ipynb``) point
  at the built pages, and a download link to the notebook heads each one;
- after the build, any page that loads a script, stylesheet, font or image from another host fails the
  build (the site must work without a network; links to other sites are fine), and so does a link to a
  file the site does not have (MkDocs checks the Markdown pages' links, not the notebooks').

The page builders are plain functions, tested without MkDocs in ``tests/test_docs.py``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

CLI_INTRO = """# Command line

Generated from the argparse parsers (`stoichgen.cli.build_parser`) each time the site is built, so it
shows exactly what `stoichgen COMMAND --help` shows. Worked examples are on the
[home page](index.md#getting-started) and in the [tutorials](tutorials/index.md);
the output files' columns are on [Output columns](columns.md).

A user error (bad value, missing file, contradictory options) prints one line `stoichgen: error: ...`
naming the value and the reason, and exits with status 2; Ctrl-C exits with status 130.
"""

COLUMNS_INTRO = """# Output columns

Generated from the code each time the site is built: the schema in `stoichgen.schema` (which
`Generator.generate` and the screen build their frames from, in this order and with these dtypes) and
the hull's `stoichgen.discover.hull_table.HULL_COLUMNS`. The same
tables are in the README (a test keeps them equal). The [Quick start](tutorials/01_quick_start.ipynb)
tutorial reads them with pandas.
"""


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            if action.nargs != 0:
                flags += f" {formatter._metavar_formatter(action, action.dest.upper())(1)[0]}"
        else:
            flags = formatter._metavar_formatter(action, action.dest)(1)[0]
        meaning = formatter._expand_help(action) if action.help else ""
        if action.choices is not None and action.metavar is not None and not isinstance(action.choices, dict):
            meaning += f" (one of: {', '.join(map(str, action.choices))})"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or not action.option_strings else default
        if isinstance(shown, list | tuple):
            shown = ", ".join(map(str, shown))
        rows.append(f"| `{_cell(flags)}` | {_cell(shown)} | {_cell(meaning)} |")
    return rows


def _command(parser: argparse.ArgumentParser, name: str, summary: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{name}`", "", _cell(summary) if summary else "", ""]
    if parser.description:
        lines += ["```text", parser.description.strip(), "```", ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = _option_rows(parser)
    if rows:
        lines += ["| argument | default | meaning |", "|---|---|---|", *rows, ""]
    sub = _subparsers(parser)
    if sub is not None:
        helps = {a.dest: a.help for a in sub._choices_actions}
        for child_name, child in sub.choices.items():
            lines += _command(child, f"{name} {child_name}", helps.get(child_name, ""), level + 1)
    return lines


def cli_markdown() -> str:
    """The command-line page: one section per command, from ``stoichgen.cli.build_parser()``."""
    from stoichgen.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps usage lines at the terminal's width (the page's column)
    try:
        parser = build_parser()
        sub = _subparsers(parser)
        assert sub is not None, "stoichgen has subcommands"
        helps = {a.dest: a.help for a in sub._choices_actions}
        lines = [CLI_INTRO, "| command | what it does |", "|---|---|"]
        lines += [f"| [`stoichgen {name}`](#stoichgen-{name}) | {_cell(helps.get(name, ''))} |"
                  for name in sub.choices]  # fmt: skip
        lines.append("")
        for name, child in sub.choices.items():
            lines += _command(child, f"stoichgen {name}", helps.get(name, ""), 2)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(lines) + "\n"


def columns_markdown() -> str:
    """The output-columns page, from the schema (the README's tables come from the same function)."""
    import stoichgen.discover.hull_table as stability
    from stoichgen.schema import GUIDED_COLUMNS, PAPER_COLUMNS, SCREEN_COLUMNS, VERIFY_COLUMNS, markdown_table

    # the module docstring's paragraph that explains the columns (not its doctest)
    paragraphs = (stability.__doc__ or "").split("\n\n")
    hull_doc = next((" ".join(p.split()) for p in paragraphs if "hull_error" in p and ">>>" not in p), "")
    return "\n".join([
        COLUMNS_INTRO,
        "## `generate` (guided search, the default)",
        "",
        "`stoichgen generate`, `Generator.generate(..., method=\"guided\")`: rows ranked by `score` per "
        "target.",
        "",
        markdown_table(GUIDED_COLUMNS),
        "",
        "## `generate --method paper`",
        "",
        "The paper's pipeline, `Generator.generate(..., method=\"paper\")`: one row per draw, in draw order.",
        "",
        markdown_table(PAPER_COLUMNS),
        "",
        "## `screen`",
        "",
        "`stoichgen screen`, `stoichgen.screen.run_screen`: a Parquet file, one row per formula.",
        "",
        markdown_table(SCREEN_COLUMNS),
        "",
        "## `hull`",
        "",
        "`stoichgen hull`, `stoichgen.discover.hull_table.annotate`: the input table with these columns "
        f"added: {', '.join(f'`{c}`' for c in stability.HULL_COLUMNS)}. {hull_doc}",
        "",
        "## `verify` (and `generate --verify K`)",
        "",
        "`stoichgen verify`, `stoichgen.verify.verify_frame`: the input table with these columns added "
        "(`stoichgen.verify.verify`: `formula` and these).",
        "",
        markdown_table(VERIFY_COLUMNS),
        "",
    ])  # fmt: skip


def options_markdown() -> str:
    """The options of ``Generator.generate`` per method, from their declarations (``discover.options``)."""
    import dataclasses

    from stoichgen.discover.options import METHOD_OPTIONS

    lines = []
    for method, options in METHOD_OPTIONS.items():
        doc = options.__doc__.strip()
        lines += [f'**`method="{method}"`**: {doc[0].lower()}{doc[1:]}', ""]
        lines += ["| option | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(options):
            spec = f.metadata["spec"]
            lines.append(f"| `{f.name}` | `{f.default!r}` | {_cell(spec.help)} |")
        lines.append("")
    return "\n".join(lines)


# --- MkDocs events -------------------------------------------------------------------------------------

GENERATED = {"cli.md": cli_markdown, "columns.md": columns_markdown}
# a marker in a hand-written page, replaced by a generated table
SNIPPETS = {"<!-- generated: generate options -->": options_markdown}


def on_files(files, config):  # noqa: ANN001, ANN201 (MkDocs' hook signature)
    from mkdocs.structure.files import File

    for name, build in GENERATED.items():
        files.append(File.generated(config, name, content=build()))
    return files


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201
    for marker, build in SNIPPETS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, build())
    return markdown


# a link of a rendered notebook to another page: MkDocs rewrites .md links of .md pages only
PAGE_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|#|/)([^"#]+)\.(?:md|ipynb)(#[^"]*)?"')


def on_page_content(html, page, config, files):  # noqa: ANN001, ANN201
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    html = PAGE_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', html)
    name = page.file.src_uri.rsplit("/", 1)[-1]
    return (
        f'<p>Run it yourself: download <a href="{name}" download><code>{name}</code></a> (stored '
        "without outputs; CI runs every cell) and open it in Jupyter, from a folder where it may write "
        "files.</p>\n" + html
    )


# a tag that loads something from another host: <script src=http..>, <link href=http..>, <img src=//..>
EXTERNAL_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//[^\"'\s>]+", re.IGNORECASE
)
EXTERNAL_CSS = re.compile(r"(?:@import|url\()\s*[\"']?(?:https?:)?//", re.IGNORECASE)


LOCAL_LINK = re.compile(r'<a\b[^>]*\bhref="(?![a-z][a-z0-9+.-]*:|#|/)([^"#?]+)', re.IGNORECASE)


def broken_links(site_dir: Path) -> list[str]:
    """Every link of a built page to a file of the site that is not there (notebook pages included)."""
    found = []
    for path in sorted(site_dir.rglob("*.html")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in LOCAL_LINK.finditer(text):
            if not (path.parent / match.group(1)).exists():
                found.append(f"{path.relative_to(site_dir)}: {match.group(1)}")
    return found


def external_assets(site_dir: Path) -> list[str]:
    """Every place in the built site that would load something from another host."""
    found = []
    for path in sorted(site_dir.rglob("*")):
        if path.suffix not in (".html", ".css"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        pattern = EXTERNAL_ASSET if path.suffix == ".html" else EXTERNAL_CSS
        found += [f"{path.relative_to(site_dir)}: {m.group(0)[:120]}" for m in pattern.finditer(text)]
    return found


def on_post_build(config):  # noqa: ANN001, ANN201
    from mkdocs.exceptions import PluginError

    found = external_assets(Path(config["site_dir"]))
    if found:
        raise PluginError("the site would fetch from the internet:\n  " + "\n  ".join(found[:20]))
    broken = broken_links(Path(config["site_dir"]))
    if broken:
        raise PluginError("links to files the site does not have:\n  " + "\n  ".join(broken[:20]))
