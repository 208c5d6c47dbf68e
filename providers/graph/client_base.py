"""The base of graph clients over a blocking driver (Ladybug, Memgraph)."""

from __future__ import annotations

from typing import Any

from providers.errors import InvalidRequestError
from providers.graph.cypher_lexer import check_parameters, check_query
from providers.interfaces.graph_clients import GraphClient
from providers.owner_thread import OwnerThread


class SyncGraphClient(GraphClient):
    """``execute`` and ``execute_in_transaction`` for clients over a blocking driver:
    inputs checked here, the work done on ``thread`` (which owns the driver's
    connection) by the subclass's ``_execute_sync`` and ``_transaction_sync``."""

    def __init__(self, thread: OwnerThread) -> None:
        self._thread = thread

    async def execute(self, query: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self._thread.run(self._execute_sync, check_query(query), check_parameters(parameters))

    async def execute_in_transaction(
        self, statements: list[tuple[str, dict[str, Any] | None]]
    ) -> list[list[dict[str, Any]]]:
        if not isinstance(statements, (list, tuple)):
            raise InvalidRequestError("must be a list of (query, parameters) pairs", "statements")
        checked = []
        for n, item in enumerate(statements):
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidRequestError("must be a (query, parameters) pair", f"statements[{n}]")
            checked.append((check_query(item[0]), check_parameters(item[1])))
        return await self._thread.run(self._transaction_sync, checked)

    def supports_transactions(self) -> bool:
        return True
