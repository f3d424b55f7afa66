"""steca-data: a declarative dataset builder and data engine for step-level trajectory calibration."""

from steca_data.compat import hide_broken_torch_extensions

__version__ = "0.1.0"

hide_broken_torch_extensions()  # before anything imports transformers (see compat.py)
