"""Prompt templates live as text files in the repository's `prompts/` folder."""

from __future__ import annotations

from pathlib import Path

from mvcap_build.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent
# A source checkout keeps them at the top level; a wheel carries a copy inside the package.
PROMPT_DIRS = (_PACKAGE.parent / "prompts", _PACKAGE / "_bundled" / "prompts")
PLACEHOLDER = "{category}"


class PromptError(ConfigError):
    """The prompt named in the config does not exist or is empty."""


def load_prompt(name_or_path: str) -> tuple[str, str]:
    """Return (name, template) for a template name in prompts/ or a path to a text file."""
    candidates = (
        [Path(name_or_path)] if name_or_path.endswith(".txt") else [d / f"{name_or_path}.txt" for d in PROMPT_DIRS]
    )
    for path in candidates:
        if path.is_file():
            template = path.read_text("utf-8").strip()
            if not template:
                raise PromptError(f"prompt file {path} is empty")
            return (name_or_path if not name_or_path.endswith(".txt") else str(path)), template
    known = sorted({p.stem for d in PROMPT_DIRS if d.is_dir() for p in d.glob("*.txt")})
    raise PromptError(f"prompt {name_or_path!r} not found; use one of {known} or a path to a .txt file")


def fill(template: str, category: str) -> str:
    return template.replace(PLACEHOLDER, category)
