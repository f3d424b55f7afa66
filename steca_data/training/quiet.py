"""Silence Hugging Face's own progress bars and warnings: our reporter shows progress, theirs is noise."""

from __future__ import annotations

import os


def quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
