"""GRAPH_CLIENT and GRAPH_ENGINE providers: Ladybug (embedded) and Memgraph (server).

Shared checks, conversions and the engine itself live in `common`; each
backend module holds its client and the few dialect-specific queries.
"""
