"""Reproduce the paper's Tables 1-6 and Figure 1 (Sawada et al. 2019, Sec. 6): ``stoichgen reproduce``.

A thin layer over the library: ``plan`` trains the runs it needs (or reuses finished ones in the report
directory), ``pieces`` evaluates them with ``stoichgen.evaluate``, and ``report`` writes ``report.md``
with the paper's numbers beside ours, PNG figures and CSV files of the raw numbers. Every finished piece
is stored on disk, so an interrupted run resumes without redoing it.
"""

from stoichgen.paper.plan import Plan
from stoichgen.paper.report import reproduce, write_report

__all__ = ["Plan", "reproduce", "write_report"]
