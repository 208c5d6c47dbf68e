"""GRAPH_CLIENT: a connection that runs Cypher against a graph database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class GraphClient(ABC):
    """Contract of a graph client: raw Cypher in, rows out.

    Queries always take their values through ``parameters``, never by string
    formatting; each row is a dict keyed by the names in the RETURN clause.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Open the database or the connection described by ``config``."""

    @abstractmethod
    async def execute(
        self, query: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one Cypher statement; its result rows."""

    @abstractmethod
    async def execute_in_transaction(
        self, statements: list[tuple[str, dict[str, Any] | None]]
    ) -> list[list[dict[str, Any]]]:
        """Run statements in order, all-or-nothing where the backend has transactions; rows per statement."""

    @abstractmethod
    def supports_transactions(self) -> bool:
        """Whether ``execute_in_transaction`` is atomic on this backend."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection or database handle; safe to call twice."""
