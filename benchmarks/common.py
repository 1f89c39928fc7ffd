"""What the benchmark scripts share: the machine's CPU model for their reports, and writing a report."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def cpu() -> str:
    """The CPU model, as lscpu names it (timings are reported beside it)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def publish(text: str, out: str | None) -> None:
    """Print a Markdown report and, given a path, write it there."""
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
