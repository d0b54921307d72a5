"""What the commands print besides their summaries: library noise kept out, and the trainer's
log as plain one-line records on stderr, like the stages' progress lines."""

from __future__ import annotations

import logging
import os
import sys

# Where the model libraries' own warnings come from (the module a warning is attributed to).
LIBRARY_MODULES = (
    r"(transformers|huggingface_hub|datasets|peft|accelerate|torch|torchvision|tokenizers|"
    r"safetensors|sentence_transformers)(\.|$)"
)


def quiet_libraries() -> None:
    """Keep the model libraries' own progress bars ("Loading weights", "Generating train split")
    and their FutureWarnings / deprecation warnings out of the output of the commands that load
    models. Our progress lines, warnings and log lines are untouched, and so is a warning those
    libraries attribute to our code (a deprecated call of ours to fix, not to hide).
    """
    import warnings

    # Read when those libraries are imported, here and in worker processes; one that is already
    # imported (in a test runner) is told directly. A user's own setting of them wins.
    if os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1") == "1":
        if "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils.logging import disable_progress_bar

            disable_progress_bar()
    if os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1") == "1" and "datasets" in sys.modules:
        from datasets import disable_progress_bars

        disable_progress_bars()
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)


class _StderrLines(logging.Handler):
    """One plain line per record on stderr, as the progress lines (mvcap_build/progress.py):
    never wrapped to the terminal's width, the same in a pipe, a Slurm log and a terminal.
    sys.stderr is looked up per line, so a swapped stderr (a test runner's) is followed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


class _LineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"[{self.formatTime(record, '%H:%M:%S')}] train_ovt: {level}{record.getMessage()}".replace("\n", " ")


def show_training_log() -> None:
    """Send the trainer's progress lines (loss terms, checkpoints) to stderr, one line each:
    `[HH:MM:SS] train_ovt: step 10/40 lr=... loss=...`."""
    for name in ("mvcap_build.train", "mvcap_build.clip"):  # the trainer, and the CLIP loading it calls
        logger = logging.getLogger(name)
        if not any(isinstance(handler, _StderrLines) for handler in logger.handlers):
            handler = _StderrLines()
            handler.setFormatter(_LineFormatter())
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
