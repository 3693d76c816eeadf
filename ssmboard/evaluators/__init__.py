"""Evaluators and what they produce. Importing this package never imports torch.

The plain-data report types live in :mod:`ssmboard.evaluators.report`; the performance,
fidelity and other evaluators live in their own modules and import torch when run.
"""
from ssmboard.evaluators.environment import collect_environment
from ssmboard.evaluators.report import REPORT_FORMAT, Environment, Metric, Report, ReportError

__all__ = ["REPORT_FORMAT", "Environment", "Metric", "Report", "ReportError", "collect_environment"]
