"""Comparing two runs and explaining why their results differ (``unitrack compare`` / ``explain``)."""

from unitrack.analysis.evidence import gather_evidence

__all__ = ["gather_evidence"]
