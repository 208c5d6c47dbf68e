"""TOOL: a named operation with a JSON-schema input, invoked with arguments."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Tool(ABC):
    """Contract of a tool.

    The sync getters answer from state set by ``initialize`` and must be cheap;
    the caller validates arguments against ``get_input_schema`` before ``invoke``.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Resolve the providers this tool composes, as named in ``config``."""

    @abstractmethod
    def get_name(self) -> str:
        """The tool's name, e.g. "memory.search"."""

    @abstractmethod
    def get_description(self) -> str:
        """One or two sentences saying what the tool does."""

    @abstractmethod
    def get_input_schema(self) -> dict[str, Any]:
        """JSON Schema of the ``arguments`` object ``invoke`` accepts."""

    @abstractmethod
    async def invoke(self, arguments: dict[str, Any]) -> Any:
        """Run the tool on validated ``arguments``; a JSON-serialisable result."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""
