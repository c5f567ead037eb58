"""layerscope: multiscale analysis of layered battery cathodes.

One crystal core (:mod:`layerscope.crystal`) feeds the time-of-flight neutron
powder model (:mod:`layerscope.diffraction`), refinement, electron-microscopy
and spectroscopy analyses. See ``DESIGN.md`` in the shared project folder for
the architecture.

The notebook API (``import layerscope as ls``; each name is imported on first use, so
``import layerscope`` itself loads no science module, no JAX and no matplotlib):

* readers: ``ls.load_phases``, ``ls.read_powder``, ``ls.read_instrument``, ``ls.read_cycler``,
  ``ls.read_image``, ``ls.read_spectrum``, ``ls.read_fourd``;
* analyses: ``ls.refine(data, *, instrument, phases, strategy=None, conventions=None)``,
  ``ls.refine_joint(data_files, *, instruments, phases, ...)`` (several CW histograms and/or TOF banks, one
  structure),
  ``ls.refine_series(series, *, cycler, ...)`` → ``SeriesResult``,
  ``ls.analyze_haadf(image, *, ...)`` → ``HaadfResult``, ``ls.index_fourd(scan, *, phases, ...)`` →
  ``FourDMaps``, ``ls.descriptors(phases)``, ``ls.cycle_summary(log)``, ``ls.analyze_eels(spectrum)``,
  ``ls.run_study(study, out_dir)``;
* outputs: ``ls.write_series``, ``ls.write_haadf``, ``ls.plot_haadf``, ``ls.write_fourd``, ``ls.plot_fourd``
  (the files the command line writes; the plots as Matplotlib figures or RGB images);
* ``ls.simulate``: the forward simulators with ground truth.
"""

__version__ = "0.1.0"

from layerscope._errors import InputError  # noqa: E402

#: public name -> "module:attribute" ("module:" for a module itself), imported on first use
_API = {
    "load_phases": "layerscope.api:load_phases",
    "read_powder": "layerscope.diffraction.readers:read_powder",
    "read_instrument": "layerscope.api:read_instrument",
    "read_cycler": "layerscope.echem.io:read_cycler",
    "read_image": "layerscope.stem.io:read_image",
    "read_spectrum": "layerscope.spectra.io:read_spectrum",
    "read_fourd": "layerscope.fourd.io:read_scan",
    # ``refine`` and ``descriptors`` are their (callable) modules: ``ls.refine(...)`` runs
    # layerscope.refine.api.refine, ``ls.descriptors(...)`` layerscope.descriptors.descriptors
    "refine": "layerscope.refine:",
    "descriptors": "layerscope.descriptors:",
    "refine_joint": "layerscope.refine.joint_api:refine_joint",
    "refine_series": "layerscope.operando.api:refine_series",
    "write_series": "layerscope.operando.api:write_series",
    "analyze_haadf": "layerscope.stem.haadf:analyze_haadf",
    "write_haadf": "layerscope.stem.haadf_output:write_haadf",
    "plot_haadf": "layerscope.stem.haadf_output:plot_haadf",
    "index_fourd": "layerscope.fourd.api:index_fourd",
    "write_fourd": "layerscope.fourd.api:write_fourd",
    "plot_fourd": "layerscope.fourd.api:plot_fourd",
    "cycle_summary": "layerscope.api:cycle_summary",
    "analyze_eels": "layerscope.spectra.api:analyze_eels",
    "run_study": "layerscope.api:run_study",
    "simulate": "layerscope.simulate:",
}

__all__ = ["__version__", "InputError", *_API]


def __getattr__(name):
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'layerscope' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
