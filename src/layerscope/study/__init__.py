"""One study file, every analysis, one report (``layerscope run STUDY.toml --out DIR``).

* :mod:`.schema` — the study TOML: kinds of dataset, their keys, validation before any work;
* :mod:`.tasks` — one analysis of one dataset and its checks against ground truth;
* :mod:`.runner` — resumable execution, locally or on a Dask cluster;
* :mod:`.results` — ``results.h5`` (xarray groups with units and provenance);
* :mod:`.report` — ``report.html`` mirroring the paper's figures and tables.
"""

from layerscope.study.runner import run_study
from layerscope.study.schema import SCHEMA, Study, StudyError, read_study

__all__ = ["SCHEMA", "Study", "StudyError", "read_study", "run_study"]
