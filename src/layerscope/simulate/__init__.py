"""Forward simulators with ground truth (operando TOF series, HAADF images, 4D-STEM scans, spectra).

``layerscope.simulate.cycler``, ``.operando``, ``.haadf``, ``.fourd``, ``.spectra`` and ``.study``
are imported on first use (``import layerscope as ls; ls.simulate.spectra.mn_l23_eels()``).
"""

_SUBMODULES = ("cycler", "fourd", "haadf", "operando", "spectra", "study")


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
