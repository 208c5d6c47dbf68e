"""What the scaffold is asked for (`Request`), what it will do (`Plan`), and its one error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.types import ProviderType

EXIT_USAGE = 2  # a flag (or an answer) is wrong: the message names it
EXIT_FAILED = 1  # the work could not be done (a broken providers.yaml, a failed write, a template bug)


class ScaffoldError(Exception):
    """A problem the operator can fix; ``flag`` names the option at fault."""

    def __init__(self, message: str, flag: str | None = None, code: int = EXIT_USAGE) -> None:
        super().__init__(f"{flag}: {message}" if flag else message)
        self.flag = flag
        self.code = code


@dataclass
class Request:
    """What to generate; every field already validated by the checks in `serve_app.scaffold.checks`."""

    ptype: ProviderType
    name: str
    class_name: str
    config_keys: dict[str, Any] = field(default_factory=dict)
    package_dir: Path = Path("providers/custom")
    tests_dir: Path = Path("tests/custom")
    config_path: Path | None = Path("config/providers.yaml")
    force: bool = False
    root: Path = field(default_factory=Path.cwd)  # the import root: module names are relative to it


@dataclass
class Plan:
    """Everything `write` does, computed (and checked) before any file changes."""

    request: Request
    module_name: str
    module_path: Path
    test_path: Path
    files: dict[Path, str]  # path -> text, in the order they are written
    config: dict[str, Any]  # the provider's config: built-in keys, then the operator's
    config_edit: tuple[str, str] | None  # (original, new) text of providers.yaml; None: no change
    notes: list[str] = field(default_factory=list)

    @property
    def class_path(self) -> str:
        return f"{self.module_name}.{self.request.class_name}"
