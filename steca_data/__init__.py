"""steca-data: a declarative dataset builder and data engine for step-level trajectory calibration."""

__version__ = "0.1.0"
