"""Stages and how they are composed: the stage contract (`stage.py`), pipeline files
(`config.py`) and the runners that run one stage or all of a file's sections (`runner.py`)."""
