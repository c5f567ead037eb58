"""Operando series: manifests, alignment with the cycler log, sequential refinement outputs."""

from layerscope.operando.series import SeriesEntry, build_manifest, read_manifest, read_series_patterns
from layerscope.operando.align import align_to_cycler

__all__ = ["SeriesEntry", "build_manifest", "read_manifest", "read_series_patterns", "align_to_cycler"]
