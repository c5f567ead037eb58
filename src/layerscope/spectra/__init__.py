"""Spectroscopy: EELS edge ratios (Mn L3/L2 → valence, O-K pre-edge), EDS K lines, sXAS.

EELS workflow: :func:`eels_pipeline` (energy calibration on the zero-loss peak or an edge, optional
PCA, per-spectrum analysis with flags) or :func:`analyse_signal` for a HyperSpy signal in memory.
"""

from layerscope.spectra.analysis import EelsOptions, EelsResult, analyse_eels
from layerscope.spectra.calibrate import edge_shifts, zlp_position, zlp_shifts
from layerscope.spectra.calibration import (MN_DE_CALIBRATION, MN_L3L2_TAN2012, CalibrationPoint,
                                            ValenceCalibration, calibration_from_references)
from layerscope.spectra.eels import (fit_power_law, line_profile, o_k_pre_edge,
                                     subtract_background, white_line_ratio)
from layerscope.spectra.io import Spectrum, from_signal, read_spectrum
from layerscope.spectra.pipeline import analyse_signal, eels_pipeline

__all__ = ["MN_DE_CALIBRATION", "MN_L3L2_TAN2012", "CalibrationPoint", "EelsOptions", "EelsResult", "Spectrum", "ValenceCalibration",
           "analyse_eels", "analyse_signal", "calibration_from_references", "edge_shifts",
           "eels_pipeline", "fit_power_law", "from_signal", "line_profile", "o_k_pre_edge",
           "read_spectrum", "subtract_background", "white_line_ratio", "zlp_position", "zlp_shifts"]
