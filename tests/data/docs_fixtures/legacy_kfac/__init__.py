"""Stand-in for the legacy K-FAC package (docs generator fixture)."""

from legacy_kfac import fisher_factors

__all__ = ["fisher_factors"]
