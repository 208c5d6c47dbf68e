"""Moved: what lived here is in modules named for what they hold.

`providers.graph.checks` (input checks), `providers.graph.times`,
`providers.graph.rows`, `providers.graph.cypher_lexer` (raw Cypher),
`providers.graph.client_base` (`SyncGraphClient`) and `providers.graph.engine`
(`CypherGraphEngine`, `GraphEngineConfig`). This module re-exports only what
code outside ``providers/`` still imports from here: ``deployments/graph_api.py``
(``is_read_only``).
"""

from providers.graph.cypher_lexer import is_read_only

__all__ = ["is_read_only"]
