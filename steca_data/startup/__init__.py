"""Start-up code for interpreters that steca-data starts (see ``sitecustomize.py`` here and ``compat.py``).

This folder is put on ``PYTHONPATH`` of child processes only; nothing here is imported by the package.
"""
