"""The web page quotes the verification's headline (issue 21); the numbers it quotes are the evaluation's."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _summary_row(method: str) -> dict[str, str]:
    lines = (ROOT / "docs" / "verify" / "evaluation.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | candidates |"))
    names = [cell.strip() for cell in lines[start].strip("|").split("|")]
    row = next(line for line in lines[start:] if line.startswith(f"| {method} |"))
    return dict(zip(names, (cell.strip() for cell in row.strip("|").split("|")), strict=True))


def test_the_page_quotes_the_verification_headline_as_measured():
    page = (ROOT / "src" / "stoichgen" / "web" / "static" / "index.html").read_text()
    quote = page[page.index('id="verified-headline"') :]
    quote = quote[: quote.index("</p>")]
    guided = _summary_row("guided")
    for column in ("within 0.2 of target", "verified at/below hull", "surrogate claims at/below hull"):
        assert f"{float(guided[column]):.0%}" in quote, (column, guided[column], quote)
