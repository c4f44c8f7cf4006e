"""Fixtures of the report tests (defined in :mod:`tests.report._helpers`)."""

from tests.report._helpers import ct_series, ct_volume

__all__ = ["ct_series", "ct_volume"]
