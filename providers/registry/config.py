"""The schema of ``config/providers.yaml`` and its loader.

Shape (the seed's, plus optional keys)::

    registry: {...}                      # RegistrySettings, all optional
    embeddings:                          # one section per ProviderType value
      providers:
        minilm:
          class: providers.embeddings.sentence_transformers.SentenceTransformerProvider
          config: {...}                  # handed to the provider's initialize()
          deployment: {...}              # Ray Serve options, see DeploymentOptions
          fallback: [other]              # tried in order when minilm fails a call
          depends_on: [rerankers/x]      # providers this one calls through the registry
          metadata: {...}                # free-form, shown by list_providers
          call_timeout_s: 30             # per-call deadline in the router

Every error names its key path (``embeddings.providers.minilm.deployment.num_gpus``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import GenerateJsonSchema

# ProviderConfig and parse_provider_config live in providers.config_base; re-exported
# here for deployments/ and serve_app/, which import them from this module.
from providers.config_base import NAME_PATTERN, ProviderConfig, StrictModel, describe_errors, parse_provider_config  # noqa: F401
from providers.errors import ConfigError, RegistryError
from providers.registry.breaker import BreakerOptions
from providers.registry.interpolation import interpolate_tree
from providers.types import ProviderType

# Python code uses _NAME_RE.fullmatch: re's "$" also matches before a final "\n"
# (pydantic's pattern= is Rust's regex, where "$" is the end of the text).
_NAME_RE = re.compile(NAME_PATTERN)


def is_valid_name(name: object) -> bool:
    """A provider (or application) name: what NAME_PATTERN allows, nothing after it."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


# The project's own providers are always loadable; anything else must be named.
DEFAULT_ALLOWED_PREFIXES = ("providers.",)


class BatchingOptions(StrictModel):
    """Dynamic batching (``@serve.batch``) on a provider's batchable method."""

    enabled: bool = Field(True, description="Batch concurrent calls into one model call.")
    max_batch_size: int = Field(
        32, ge=1, le=4096,
        description="Most requests merged into one call. all-MiniLM on 2 CPU cores "
        "peaks near 32 texts per forward pass (about 440 sentences/s, 3x one-by-one).",
    )
    # The router already merges concurrent calls; waiting here again would
    # only add latency, so the default is short.
    batch_wait_timeout_s: float = Field(
        0.002, ge=0, le=10,
        description="How long the first request of a batch waits for others.",
    )


class AutoscalingOptions(StrictModel):
    """The common subset of Ray Serve's AutoscalingConfig."""

    min_replicas: int = Field(1, ge=0, description="Replicas kept at idle.")
    initial_replicas: int | None = Field(None, ge=0, description="Replicas at start.")
    max_replicas: int = Field(1, ge=1, description="Upper bound on replicas.")
    target_ongoing_requests: float = Field(
        16, gt=0, description="Ongoing requests per replica the autoscaler aims for."
    )
    upscale_delay_s: float = Field(30, ge=0, description="Sustained load before scaling up.")
    downscale_delay_s: float = Field(600, ge=0, description="Sustained idle before scaling down.")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingOptions:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class DeploymentOptions(StrictModel):
    """How a provider runs on Ray Serve (its own application, one deployment)."""

    num_replicas: int | None = Field(None, ge=1, description="Fixed replica count (default 1).")
    autoscaling_config: AutoscalingOptions | None = Field(
        None, description="Autoscale instead of a fixed count; excludes num_replicas."
    )
    num_cpus: float = Field(1.0, ge=0, description="Logical CPUs per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica; fractions share a GPU.")
    memory: int | None = Field(None, ge=0, description="Bytes of memory reserved per replica.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources per replica."
    )
    # Ray Serve's default is 5: measured here, that collapses under 64
    # concurrent clients (dropped HTTP connections). Batching needs many
    # requests in flight per replica to fill a batch.
    max_ongoing_requests: int = Field(
        256, ge=1, description="Requests one replica holds at once (batching needs many)."
    )
    max_queued_requests: int = Field(
        -1, ge=-1, description="Requests queued in callers before rejecting; -1 is no limit."
    )
    health_check_period_s: float = Field(10, gt=0, description="Serve's replica health check period.")
    health_check_timeout_s: float = Field(30, gt=0, description="Serve's replica health check timeout.")
    graceful_shutdown_timeout_s: float = Field(
        20, ge=0, description="How long a replica drains in-flight requests when removed."
    )
    batching: BatchingOptions = Field(
        default_factory=BatchingOptions, description="Dynamic batching of embed_texts calls."
    )

    @model_validator(mode="after")
    def _replicas_xor_autoscaling(self) -> DeploymentOptions:
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("give num_replicas or autoscaling_config, not both")
        return self


class ProviderSpec(StrictModel):
    """One provider: what to load, how to run it, where to fall back."""

    class_path: str = Field(
        alias="class", min_length=1,
        description="Dotted path to the class: pkg.mod.Class or pkg.mod:Class.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The provider's own settings, passed to its initialize(); docs/providers.md lists each provider's keys.",
    )
    deployment: DeploymentOptions = Field(
        default_factory=DeploymentOptions, description="Ray Serve options."
    )
    fallback: list[str] = Field(
        default_factory=list, description="Names of the same type, tried in order on failure."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Providers this one calls, as 'type/name'."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form labels.")
    embedder: str | None = Field(
        None, pattern=NAME_PATTERN,
        description="Vector stores: the embeddings provider whose vectors fill this store. The registry "
        "embeds text for it and refuses vectors of any other model (the embedding-space guard).",
    )
    call_timeout_s: float = Field(
        30.0, gt=0, le=3600,
        description="Deadline of one call in the router; past it the fallback serves.",
    )
    circuit_breaker: BreakerOptions = Field(
        default_factory=BreakerOptions, description="When the router stops calling this provider."
    )

    def __repr_args__(self) -> Any:
        # A spec is printed by tracebacks, assertion rewriting and f-strings: its
        # config may hold secrets (api_key, DSN passwords), so the repr redacts them.
        from providers.registry.redaction import redact

        for key, value in super().__repr_args__():
            yield key, redact(value) if key == "config" else value

    @field_validator("fallback")
    @classmethod
    def _fallback_names(cls, names: list[str]) -> list[str]:
        for n in names:
            if not _NAME_RE.fullmatch(n):
                raise ValueError(f"invalid provider name {n!r}")
        if len(set(names)) != len(names):
            raise ValueError("fallback lists a name twice")
        return names

    @field_validator("depends_on")
    @classmethod
    def _dependency_refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            parse_ref(ref)
        return refs


class ProviderGroup(StrictModel):
    """The providers of one type (each type's section: ``embeddings:``, ``vector_stores:``, ...)."""

    providers: dict[str, ProviderSpec] = Field(
        default_factory=dict, description="Providers of this type by name."
    )

    @field_validator("providers")
    @classmethod
    def _names(cls, providers: dict[str, ProviderSpec]) -> dict[str, ProviderSpec]:
        for name in providers:
            if not _NAME_RE.fullmatch(name):
                raise ValueError(f"invalid provider name {name!r} (allowed: {NAME_PATTERN})")
        return providers


class RouterOptions(StrictModel):
    """The registry router: HTTP ingress and handle entry point in one deployment."""

    num_replicas: int = Field(1, ge=1, description="Router replicas.")
    num_cpus: float = Field(0.0, ge=0, description="Logical CPUs per router replica.")
    # With num_cpus 0 a router replica may land on any node, a GPU worker included;
    # when that node dies the HTTP calls inside the replica fail with it (the Python
    # proxy answers 500). A resource only the stable nodes declare keeps it off them.
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per router replica: pins routers to the nodes that declare them.",
    )
    # The router only awaits other replicas; thousands of waiting calls cost
    # little memory. Measured: a 2-hop no-op graph ran 5 req/s at 2,000
    # concurrent calls with the default, 458 req/s with 1,000.
    max_ongoing_requests: int = Field(1000, ge=1, description="Calls one router replica holds.")
    # Past max_ongoing_requests on every router replica, Serve's HTTP proxy queues
    # the call; past this many queued, it refuses with 503 + Retry-After at once
    # (cheap: the router never sees it). Unbounded (-1), a burst of 2,000
    # connections waits in that queue and every caller's latency grows with the
    # crowd; bounded, the admitted calls' wait is at most (ongoing + queued) /
    # throughput and the rest are told to come back (docs/reliability.md#overload).
    max_queued_requests: int = Field(
        100, ge=-1,
        description="Calls queued in the HTTP proxy (per proxy) once every router replica holds "
        "max_ongoing_requests; more are refused with 503 and Retry-After. -1 is no limit.",
    )
    retry_after_s: float = Field(
        1.0, ge=0, le=3600,
        description="Retry-After (seconds, rounded up) of a call refused for overload: by the router's "
        "queue or by a provider's (deployment.max_queued_requests).",
    )
    coalesce_wait_s: float = Field(
        0.05, ge=0, le=5,
        description="Longest a call waits to be merged with others into one provider call while "
        "earlier calls are in flight (0 turns merging off). A lone call never waits.",
    )
    coalesce_inflight_per_replica: int = Field(
        2, ge=1,
        description="Merged calls in flight per provider replica: one computing, one queued, "
        "so the model never idles while the next batch forms.",
    )
    coalesce_max_texts: int = Field(256, ge=1, description="Most texts in one merged provider call.")
    merge_reads: bool = Field(
        True,
        description="Merge concurrent reads of one provider (vector searches and gets, rerank, cache gets "
        "and sets, graph reads) into one provider call that the replica runs concurrently; same rule as "
        "embeddings: a lone call never waits (coalesce_wait_s 0 turns it off too).")
    merge_max_calls: int = Field(64, ge=1, description="Most reads in one merged provider call.")
    merge_inflight_per_replica: int = Field(
        1, ge=1,
        description="Merged reads in flight per provider replica before the next calls wait to be merged "
        "(a replica runs a merged call's reads concurrently, so one in flight keeps it busy; measured on "
        "pgvector at 8 clients: 1 gave 470 searches/s one hop, 2 gave 372).")


class EmbeddingCacheOptions(StrictModel):
    """Cache-aside for embeddings in the router (`providers.registry.embedding_cache`)."""

    enabled: bool = Field(True, description="A repeated text costs no model call.")
    cache: str | None = Field(
        None, pattern=NAME_PATTERN,
        description="A cache provider shared by every router replica (e.g. Redis); none: an LRU in each router.")
    ttl_s: float | None = Field(86400.0, gt=0, description="Entries expire after this long (null: never).")
    max_entries: int = Field(100_000, ge=1, description="In-router LRU: most vectors kept.")
    max_bytes: int = Field(64 * 2**20, ge=1024, description="In-router LRU: most bytes kept.")


class RolloutOptions(StrictModel):
    """How a swap watches the new version, and when it undoes itself."""

    auto_rollback: bool = Field(True, description="Roll back a new version that fails calls.")
    watch_s: float = Field(30.0, gt=0, description="How long after a flip the new version is watched.")
    error_rate: float = Field(0.5, gt=0, le=1, description="Failure share that triggers the rollback.")
    min_calls: int = Field(5, ge=1, description="Calls needed before the rate is judged.")


class McpOptions(StrictModel):
    """The Model Context Protocol at ``/mcp`` (`deployments.mcp_server`)."""

    enabled: bool = Field(True, description="Serve MCP (Streamable HTTP, stateless) at /mcp on the registry's port.")
    token_env: str = Field(
        "PROVIDER_REGISTRY_MCP_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the MCP bearer token (read where Ray starts, like the admin "
        "token; a separate secret); set: /mcp requires it; unset: /mcp is open like /v1/tools.",
    )


class RegistrySettings(StrictModel):
    """Settings of the registry itself (the ``registry:`` section)."""

    app_name: str = Field(
        "registry", pattern=NAME_PATTERN,
        description="Serve application of the router; provider apps are prefixed with it.",
    )
    route_prefix: str = Field(
        "/", pattern=r"^/[A-Za-z0-9_\-/]*$", description="HTTP path prefix of the registry's routes."
    )
    http_host: str = Field("127.0.0.1", description="Bind address; wider is an explicit choice.")
    http_port: int = Field(8000, ge=1, le=65535, description="HTTP port of Serve's proxy.")
    ingress: Literal["haproxy", "proxy"] = Field(
        "haproxy",
        description="HTTP ingress of a Ray instance the registry starts itself: 'haproxy' (HAProxy and Serve's "
        "throughput mode) or 'proxy' (Serve's Python proxy). PROVIDER_REGISTRY_INGRESS overrides it; a cluster "
        "being joined keeps the ingress its `ray start` environment chose (docs/operations.md).")
    allowed_module_prefixes: list[str] = Field(
        default_factory=list,
        description="Module prefixes classes may be loaded from, besides 'providers.'.",
    )
    # Input limits: ceilings for every provider, checked in the router before
    # any provider is called (providers/registry/limits.py). A provider may
    # have tighter ones of its own (a store's config.max_top_k, ...).
    max_texts_per_request: int = Field(
        2048, ge=1,
        description="Most texts one call sends to a model: embeddings inputs, documents an upsert "
        "embeds, rerank candidates.")
    max_chars_per_text: int = Field(
        100_000, ge=1,
        description="Longest text accepted anywhere: texts, queries, document contents, episode contents, "
        "Cypher queries, every string of a tool's arguments.")
    max_request_bytes: int = Field(
        16 * 2**20, ge=1024,
        description="Largest HTTP request body (413 beyond it), checked on Content-Length before "
        "reading and while reading.")
    max_items_per_request: int = Field(
        10_000, ge=1,
        description="Most documents, ids, entities or relationships in one call, and items of any "
        "list in a tool's arguments.")
    max_top_k: int = Field(
        10_000, ge=1, description="Largest top_k or limit of one search or listing.")
    max_graph_depth: int = Field(
        10, ge=1, description="Deepest graph traversal (neighbors, paths, as_of reads).")
    log_encoding: Literal["TEXT", "JSON"] = Field(
        "TEXT",
        description="Encoding of the Serve logs of the router and of every provider application: "
        "JSON lines carry provider_type, provider_name and provider_version as fields.")
    health_check_interval_s: float = Field(
        5.0, gt=0, description="Period of health monitoring (an unhealthy probe opens the breaker)."
    )
    deploy_timeout_s: float = Field(
        600.0, gt=0, description="How long a provider may take to become RUNNING."
    )
    orphan_grace_s: float = Field(
        60.0, gt=0,
        description="A provider application of this registry that no route names for this long "
        "(left by a router replica that died mid-swap) is deleted.",
    )
    check_resources: bool = Field(
        True,
        description="Refuse a provider whose per-replica resources no node has. "
        "Turn off on autoscaling clusters whose GPU nodes start on demand.",
    )
    router: RouterOptions = Field(default_factory=RouterOptions, description="Router deployment.")
    embedding_cache: EmbeddingCacheOptions = Field(default_factory=EmbeddingCacheOptions,
                                                   description="Embedding cache in the router.")
    admin_token_env: str = Field(
        "PROVIDER_REGISTRY_ADMIN_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the admin bearer token; unset disables /v1/admin.",
    )
    rollout: RolloutOptions = Field(default_factory=RolloutOptions, description="Swaps and rollbacks.")
    mcp: McpOptions = Field(default_factory=McpOptions, description="The MCP server at /mcp.")

    def allowed_prefixes(self) -> tuple[str, ...]:
        return DEFAULT_ALLOWED_PREFIXES + tuple(self.allowed_module_prefixes)


class RegistryConfig(StrictModel):
    """The whole providers.yaml: the registry's settings, then one section per provider type."""

    registry: RegistrySettings = Field(default_factory=RegistrySettings, description="The registry itself.")
    embeddings: ProviderGroup = Field(default_factory=ProviderGroup, description="Turn texts into vectors.")
    vector_stores: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Keep documents with their embeddings and search them by similarity."
    )
    graph_engines: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Store and query a knowledge graph of entities and relationships."
    )
    graph_managers: ProviderGroup = Field(
        default_factory=ProviderGroup, description="High-level, temporal operations over a graph engine."
    )
    graph_clients: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Connections that run Cypher against a graph database."
    )
    rerankers: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Reorder search candidates by relevance to a query."
    )
    cache: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Key-value caches with expiry, namespaces and hit statistics."
    )
    tools: ProviderGroup = Field(
        default_factory=ProviderGroup, description="Named operations with a JSON Schema input, invoked with arguments."
    )

    @model_validator(mode="after")
    def _references(self) -> RegistryConfig:
        shared = self.registry.embedding_cache.cache
        if shared is not None and shared not in self.cache.providers:
            raise ConfigError(f"unknown cache provider {shared!r}; known: {sorted(self.cache.providers)}",
                              "registry.embedding_cache.cache")
        for ptype in ProviderType:
            group = self.group(ptype).providers
            for name, spec in group.items():
                base = f"{ptype.value}.providers.{name}"
                for fb in spec.fallback:
                    if fb == name:
                        raise ConfigError("a provider cannot fall back to itself", f"{base}.fallback")
                    if fb not in group:
                        raise ConfigError(
                            f"unknown {ptype.value} provider {fb!r}; known: {sorted(group)}",
                            f"{base}.fallback",
                        )
                if spec.embedder is not None:
                    if ptype is not ProviderType.VECTOR_STORE:
                        raise ConfigError("only vector stores take an embedder", f"{base}.embedder")
                    if spec.embedder not in self.embeddings.providers:
                        raise ConfigError(
                            f"unknown embeddings provider {spec.embedder!r}; known: {sorted(self.embeddings.providers)}",
                            f"{base}.embedder",
                        )
                for ref in spec.depends_on:
                    try:
                        dtype, dname = parse_ref(ref)
                    except ValueError as exc:
                        raise ConfigError(str(exc), f"{base}.depends_on") from None
                    if dname not in self.group(dtype).providers:
                        raise ConfigError(f"unknown provider {ref!r}", f"{base}.depends_on")
            fallback_map = {n: s.fallback for n, s in group.items()}
            for name in group:
                fallback_chain(name, fallback_map, path=f"{ptype.value}.providers.{name}.fallback")
        return self

    def group(self, ptype: ProviderType) -> ProviderGroup:
        return getattr(self, ptype.value)

    def specs(self) -> list[tuple[ProviderType, str, ProviderSpec]]:
        return [(t, n, s) for t in ProviderType for n, s in self.group(t).providers.items()]


class _SchemaWithEmptyDefaults(GenerateJsonSchema):
    """Shows ``default_factory=list``/``dict`` defaults (``[]``, ``{}``), which
    pydantic leaves out: editors and docs/configuration.md then show them. Nested
    models' defaults stay out; their own keys carry them."""

    def get_default_value(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory in (list, dict) and not schema.get("default_factory_takes_data"):
            return factory()
        return super().get_default_value(schema)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of providers.yaml (for editors, and docs/configuration.md's reference)."""
    schema = RegistryConfig.model_json_schema(by_alias=True, schema_generator=_SchemaWithEmptyDefaults)
    schema["title"] = "providers.yaml"
    return schema


def parse_ref(ref: str) -> tuple[ProviderType, str]:
    """``'embeddings/minilm'`` -> ``(ProviderType.EMBEDDING, 'minilm')``."""
    ptype, sep, name = str(ref).partition("/")
    if not sep or not _NAME_RE.fullmatch(name):
        raise ValueError(f"provider reference {ref!r} must look like 'type/name'")
    try:
        return ProviderType.parse(ptype), name
    except RegistryError as exc:  # pydantic only wraps ValueError with the key path
        raise ValueError(str(exc)) from None


def fallback_chain(primary: str, fallbacks: Mapping[str, list[str]], path: str = "fallback") -> list[str]:
    """The names tried after ``primary``, depth first, each once.

    ``a -> [b, c]`` and ``b -> [d]`` give ``[b, d, c]``. A cycle is an error:
    it would be a loop in the operator's mental model even where the
    de-duplication would stop it.
    """
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        for nxt in fallbacks.get(name, []):
            if nxt in trail:
                cycle = " -> ".join(trail + (nxt,))
                raise ConfigError(f"fallback cycle {cycle}", path)
            if nxt not in order:
                order.append(nxt)
                visit(nxt, trail + (nxt,))

    visit(primary, (primary,))
    return order


def parse_config(raw: Any, env: Mapping[str, str] | None = None, source: str = "config",
                 interpolate: bool = True) -> RegistryConfig:
    """Validate a parsed YAML document (interpolating ``${VAR}`` first, unless
    ``interpolate`` is False: a config already interpolated must not be again,
    or a secret holding ``$$`` or ``${`` would change)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must be a mapping at the top level, got {type(raw).__name__}")
    tree = interpolate_tree(raw, os.environ if env is None else env) if interpolate else raw
    try:
        return RegistryConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source)) from None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> RegistryConfig:
    """Read, interpolate and validate a providers.yaml file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending source line, which may hold a secret:
        # report the problem and its position only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from None
    return parse_config(raw, env, source=str(p))


def parse_spec(raw: Any, path: str = "provider") -> ProviderSpec:
    """Validate one provider spec (run-time registration)."""
    try:
        return ProviderSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, path)) from None
