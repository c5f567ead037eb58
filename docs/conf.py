"""Sphinx configuration of the layerscope documentation.

Build (from the project root; warnings are errors, every gallery example is executed)::

    .venv/bin/pip install -e ".[docs]"
    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

The HTML lands in ``docs/_build/html/index.html``.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))     # the checkout's layerscope wins over an installed one
os.environ.setdefault("MPLBACKEND", "agg")  # the docs build chooses the backend, never the library

import layerscope  # noqa: E402

project = "layerscope"
author = "layerscope developers"
copyright = "layerscope developers, BSD-3-Clause"
release = version = layerscope.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_typehints = "none"            # the numpydoc sections state types and units
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",       # every plot_*.py example is executed during the build
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "download_all_examples": False,
}

templates_path = []
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.db",
                    "auto_examples/*.md5"]
html_theme = "furo"
html_title = f"layerscope {release}"
