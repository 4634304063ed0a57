"""The run report of ``mocap process``: what was found, how well it fits, what to look at.

:mod:`mocap.report.run` computes the numbers and writes ``report.yaml`` and ``report.md``;
:mod:`mocap.report.html` writes ``report.html``, the same with pictures (one self-contained page,
figures from :mod:`mocap.report.plots`, which needs matplotlib and is imported only there). Both
read the take once, a chunk of frames at a time (:mod:`mocap.report.collect`), so a long take's
report does not hold the take in memory.
"""

from mocap.report.collect import TakeFigures, take_figures
from mocap.report.html import html_report, write_html_report
from mocap.report.run import (MAX_BONE_CV, MAX_REPROJECTION_FRACTION, MIN_COVERAGE, bone_cv, figures_report,
                              load_export_summary, run_report, write_run_report)

__all__ = ["MAX_BONE_CV", "MAX_REPROJECTION_FRACTION", "MIN_COVERAGE", "TakeFigures", "bone_cv", "figures_report",
           "html_report", "load_export_summary", "run_report", "take_figures", "write_html_report",
           "write_run_report"]
