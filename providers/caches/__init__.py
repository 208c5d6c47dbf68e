"""CACHE providers: an in-process LRU (`memory`) and Redis/Valkey (`redis_cache`)."""
