"""Evaluation as in paper 001 §4.1: build benchmark inputs, restore them with any method, score with pyiqa, and
report a table shaped like the paper's Table 1."""

from .metrics import FULL_REFERENCE, PAPER_METRICS, create_scorers
from .report import PAPER_FLUXIR, render_table

__all__ = ["FULL_REFERENCE", "PAPER_FLUXIR", "PAPER_METRICS", "create_scorers", "render_table"]
