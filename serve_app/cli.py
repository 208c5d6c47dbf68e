"""``provider-registry`` / ``python -m serve_app``: the operator's command line.

    provider-registry serve [--config config/providers.yaml]
    provider-registry check [--config ...]                    validate without starting anything
    provider-registry list | stats | health TYPE NAME         read (no token needed)
    provider-registry register TYPE NAME --class PATH [--config JSON] [--spec JSON]
    provider-registry swap TYPE NAME [--class PATH] [--config JSON] [--spec JSON]
    provider-registry reload | rollback | delete TYPE NAME
    provider-registry fallback TYPE NAME [FALLBACK ...]       set (none: clear)
    provider-registry monitoring on|off
    provider-registry reembed STORE [--embedder NAME] [--target COLLECTION] [--batch-size N] [--abort]
    provider-registry build [CONFIG] -o config/serve_config.yaml   a Ray Serve config for `serve deploy`
    provider-registry apply FILE [--dry-run] [--prune]        make the registry follow a providers.yaml
    provider-registry export [-o FILE]                        the live table as providers.yaml (admin)
    provider-registry schema [-o FILE]                        JSON Schema of providers.yaml, for editors
    provider-registry status                                  one line per provider: health, breaker, latency
    provider-registry add-provider [--type T --name N ...]    scaffold a provider, its tests, its config entry
    provider-registry mcp [--url URL] [--no-start]            MCP server on stdio, for desktop clients

Operations go to a running registry over its admin HTTP API (``--url``,
default http://127.0.0.1:8000) with the token from the environment variable
named by ``--token-env`` (default PROVIDER_REGISTRY_ADMIN_TOKEN).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _json_arg(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"error: {what} must be a JSON object")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provider-registry", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("serve", "check"):
        s = sub.add_parser(name)
        s.add_argument("--config", default="config/providers.yaml")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--url", default=os.environ.get("PROVIDER_REGISTRY_URL", "http://127.0.0.1:8000"))
    remote.add_argument("--token-env", default="PROVIDER_REGISTRY_ADMIN_TOKEN")
    for name in ("list", "stats", "status"):
        s = sub.add_parser(name, parents=[remote])
        s.add_argument("--json", action="store_true", help="the raw JSON instead of a table")
    b = sub.add_parser("build", help="write a Ray Serve config file from providers.yaml")
    b.add_argument("config", nargs="?", default="config/providers.yaml")
    b.add_argument("-o", "--output", default="config/serve_config.yaml")
    ex = sub.add_parser("export", parents=[remote], help="write the live route table as providers.yaml")
    ex.add_argument("-o", "--output", default="-", help="file, or - for stdout")
    ap = sub.add_parser("apply", parents=[remote], help="make the running registry follow a providers.yaml")
    ap.add_argument("file")
    ap.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    ap.add_argument("--prune", action="store_true", help="delete providers the file does not name")
    re_ = sub.add_parser("ray-env", help="the environment every node's `ray start` needs for an ingress")
    re_.add_argument("--ingress", choices=["haproxy", "proxy"], default=None,
                     help="default: PROVIDER_REGISTRY_INGRESS, else haproxy")
    sc = sub.add_parser("schema", help="JSON Schema of providers.yaml")
    sc.add_argument("-o", "--output", default="-", help="file, or - for stdout")
    target = argparse.ArgumentParser(add_help=False, parents=[remote])
    target.add_argument("type")
    target.add_argument("name")
    for name in ("health", "reload", "rollback", "delete"):
        s = sub.add_parser(name, parents=[target])
        if name == "health":
            s.add_argument("--json", action="store_true", help="the raw JSON instead of a table")
    for name in ("register", "swap"):
        s = sub.add_parser(name, parents=[target])
        s.add_argument("--class", dest="class_path", required=name == "register")
        s.add_argument("--config", help="JSON object: the provider's config")
        s.add_argument("--spec", help="JSON object: other providers.yaml keys (deployment, fallback, ...)")
    fb = sub.add_parser("fallback", parents=[target])
    fb.add_argument("fallbacks", nargs="*")
    re = sub.add_parser("reembed", parents=[remote], help="move a vector store to its embedder's model")
    re.add_argument("store")
    re.add_argument("--embedder", help="embeddings provider to re-embed with (default: the store's)")
    re.add_argument("--target", help="new collection name (default: derived from the model)")
    re.add_argument("--batch-size", type=int, default=256)
    re.add_argument("--abort", action="store_true", help="give up a re-embed in progress")
    ing = sub.add_parser("ingest", parents=[remote], help="bulk-load documents into a vector store")
    ing.add_argument("store")
    ing.add_argument("file", help=".jsonl (documents), .csv (a content column) or text (one per line)")
    ing.add_argument("--format", choices=["jsonl", "csv", "lines"], help="default: from the file's suffix")
    ing.add_argument("--batch-size", type=int, default=256)
    ing.add_argument("--text-column", default="content", help="CSV: the column holding the text")
    ing.add_argument("--start-line", type=int, default=1, help="resume from this input line")
    mon = sub.add_parser("monitoring", parents=[remote])
    mon.add_argument("state", choices=["on", "off"])
    from serve_app.scaffold import add_arguments

    add_arguments(sub.add_parser("add-provider", help="scaffold a new provider, its tests and its config entry"))
    from serve_app.mcp_command import add_arguments as add_mcp_arguments

    add_mcp_arguments(sub.add_parser("mcp", help="serve the registry's tools over MCP on stdio (desktop clients)"))
    return p


def _admin_headers(args: argparse.Namespace) -> dict[str, str] | None:
    """The admin Authorization header, or None (after saying which variable to set)."""
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: set {args.token_env} to the registry's admin token", file=sys.stderr)
        return None
    return {"Authorization": f"Bearer {token}"}


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None, admin: bool = True) -> Any:
    """The HTTP response, or an exit code (2: no token, 1: unreachable) after printing why."""
    import httpx

    headers = _admin_headers(args) if admin else {}
    if headers is None:
        return 2
    try:
        return httpx.request(method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=900)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None, admin: bool = True) -> int:
    r = _call(args, method, path, body, admin)
    if isinstance(r, int):
        return r
    text = json.dumps(r.json(), indent=2) if r.headers.get("content-type", "").startswith("application/json") else r.text
    print(text, file=sys.stdout if r.is_success else sys.stderr)
    return 0 if r.is_success else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from serve_app.main import serve_forever

        return serve_forever(args.config)
    if args.command == "check":
        return _check(args.config)
    if args.command == "ray-env":
        return _ray_env(args.ingress)
    if args.command == "build":
        return _build(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "export":
        return _export(args)
    if args.command == "apply":
        from serve_app.apply_command import run_apply

        return run_apply(args, _call)
    if args.command == "status":
        return _status(args)
    if args.command == "list":
        return _table_or_json(args, "/v1/providers", _providers_table)
    if args.command == "stats":
        return _table_or_json(args, "/v1/stats", _stats_table)
    if args.command == "monitoring":
        return _request(args, "POST", "/v1/admin/monitoring", {"enabled": args.state == "on"})
    if args.command == "reembed":
        return _reembed(args)
    if args.command == "ingest":
        return _ingest(args)
    if args.command == "mcp":
        from serve_app.mcp_command import run as run_mcp

        return run_mcp(args)
    if args.command == "add-provider":
        from serve_app.scaffold import run

        return run(args)
    base = f"/v1/admin/providers/{args.type}/{args.name}"
    if args.command == "health":
        return _table_or_json(args, f"/v1/providers/{args.type}/{args.name}/health", _health_table)
    if args.command in ("register", "swap"):
        body = {**_json_arg(args.spec, "--spec")}
        if args.class_path:
            body["class"] = args.class_path
        if args.config:
            body["config"] = _json_arg(args.config, "--config")
        return _request(args, "POST", base if args.command == "register" else base + "/swap", body)
    if args.command in ("reload", "rollback"):
        return _request(args, "POST", f"{base}/{args.command}")
    if args.command == "delete":
        return _request(args, "DELETE", base)
    if args.command == "fallback":
        return _request(args, "PUT", base + "/fallback", {"fallback": args.fallbacks})
    return 2


def _reembed(args: argparse.Namespace) -> int:
    """Step the server-side re-embed until done, with a progress bar (resumable: rerun after a failure)."""
    import asyncio

    import httpx

    from serve_app.client import run_reembed

    headers = _admin_headers(args)
    if headers is None:
        return 2
    if args.abort:
        return _request(args, "DELETE", f"/v1/admin/vector_stores/{args.store}/reembed")
    body = {k: v for k, v in {"embedder": args.embedder, "target": args.target,
                              "batch_size": args.batch_size}.items() if v is not None}
    url = f"{args.url.rstrip('/')}/v1/admin/vector_stores/{args.store}/reembed"

    async def step() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=900) as client:
            r = await client.post(url, json=body, headers=headers)
        if not r.is_success:
            raise _StepFailed(r.text)
        return r.json()

    try:
        state = asyncio.run(run_reembed(step, True, args.store))
    except _StepFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {type(exc).__name__} (rerun to resume)", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2))
    return 0


class _StepFailed(Exception):
    pass


def _ingest(args: argparse.Namespace) -> int:
    import httpx

    from serve_app.ingest import IngestError, ingest

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    if args.batch_size < 1 or args.start_line < 1:
        print("error: --batch-size and --start-line must be at least 1", file=sys.stderr)
        return 2
    try:
        summary = ingest(args.url, args.store, path, args.format, args.batch_size, args.text_column,
                         args.start_line, progress=True)
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _build(args: argparse.Namespace) -> int:
    from providers.errors import RegistryError
    from serve_app.serve_config import write_serve_config

    try:
        doc = write_serve_config(args.config, args.output)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(doc['applications'])} applications; deploy with: serve deploy {args.output}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from providers.registry.config import json_schema

    _emit(json.dumps(json_schema(), indent=2), args.output)
    return 0


def _export(args: argparse.Namespace) -> int:
    import yaml

    r = _call(args, "GET", "/v1/admin/export")
    if isinstance(r, int):
        return r
    if not r.is_success:
        print(r.text, file=sys.stderr)
        return 1
    body = r.json()
    header = f"# Exported from {args.url} (route table revision {body['revision']}).\n"
    if body["set_these_variables"]:
        header += "# Secrets are placeholders; set: " + ", ".join(body["set_these_variables"]) + "\n"
    _emit(header + yaml.safe_dump(body["config"], sort_keys=False, width=120), args.output)
    return 0


def _status(args: argparse.Namespace) -> int:
    import httpx

    try:
        stats = httpx.get(args.url.rstrip("/") + "/v1/stats", timeout=30).json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"error: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    rows = [("PROVIDER", "VERSION", "HEALTH", "BREAKER", "REPLICAS", "CALLS", "ERRORS", "P50 MS", "P99 MS")]
    for key, u in stats.get("usage_stats", {}).items():
        lat = u.get("latency_ms") or {}
        rows.append((key, str(u.get("version")), str(u.get("health_status")), str(u["circuit_breaker"]["state"]),
                     str(u.get("replicas")), str(u.get("calls", 0)), str(u.get("error_count", 0)),
                     _ms(lat.get("p50")), _ms(lat.get("p99"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    cache = stats.get("embedding_cache") or {}
    print(f"\nembedding cache: hit ratio {cache.get('hit_ratio')}, {cache.get('hits', 0)} hits, "
          f"{cache.get('misses', 0)} misses, {cache.get('errors', 0)} errors; "
          f"router replicas: {len(stats.get('scope', {}).get('router_replicas', []))}")
    return 0


def _table_or_json(args: argparse.Namespace, path: str, render: Any) -> int:
    """GET ``path``; print it as a table (or JSON with --json). A refusal prints the error."""
    r = _call(args, "GET", path, admin=False)
    if isinstance(r, int):
        return r
    try:
        body = r.json()
    except ValueError:
        print(r.text, file=sys.stderr)
        return 1
    if getattr(args, "json", False) or "error" in body:
        print(json.dumps(body, indent=2), file=sys.stdout if r.is_success else sys.stderr)
    else:
        print(render(body))
    return 0 if r.is_success or (path.endswith("/health") and "status" in body) else 1


def _format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _providers_table(listing: dict[str, Any]) -> str:
    rows = [("TYPE", "NAME", "VERSION", "HEALTH", "BREAKER", "CALLS", "FALLBACK", "CLASS")]
    for ptype, providers in listing.items():
        for name, p in providers.items():
            rows.append((ptype, name, str(p.get("version")), str(p.get("health_status")),
                         str((p.get("circuit_breaker") or {}).get("state")), str(p.get("usage_count", 0)),
                         ",".join(p.get("fallback") or []) or "-", str(p.get("class"))))
    return _format_table(rows) if len(rows) > 1 else "no providers"


def _stats_table(stats: dict[str, Any]) -> str:
    rows = [("PROVIDER", "CALLS", "OK", "FAILED", "FELL BACK", "AS FALLBACK", "BREAKER", "P50 MS", "P99 MS")]
    for key, u in stats.get("usage_stats", {}).items():
        lat = u.get("latency_ms") or {}
        rows.append((key, str(u.get("calls", 0)), str(u.get("successes", 0)), str(u.get("failures", 0)),
                     str(u.get("fell_back", 0)), str(u.get("served_as_fallback", 0)),
                     str((u.get("circuit_breaker") or {}).get("state")), _ms(lat.get("p50")), _ms(lat.get("p99"))))
    cache = stats.get("embedding_cache") or {}
    return _format_table(rows) + (f"\n\nembedding cache: hit ratio {cache.get('hit_ratio')}, "
                                  f"{cache.get('hits', 0)} hits, {cache.get('misses', 0)} misses")


def _health_table(report: dict[str, Any]) -> str:
    rows = [("KEY", "VALUE")] + [(str(k), json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                                 for k, v in report.items()]
    return _format_table(rows)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _emit(text: str, output: str) -> None:
    if output == "-":
        print(text)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)


def _ray_env(ingress: str | None) -> int:
    """``export`` lines for a shell: ``eval "$(provider-registry ray-env)"; ray start ...``."""
    import shlex

    from providers.errors import RegistryError
    from serve_app import ingress as ingress_switch

    try:
        chosen = ingress_switch.chosen(ingress)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, value in ingress_switch.cluster_env(chosen).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _check(path: str) -> int:
    from providers.errors import RegistryError
    from providers.registry.config import load_config
    from providers.registry.loading import load_provider_class

    try:
        cfg = load_config(path)
        for ptype, _name, spec in cfg.specs():
            load_provider_class(spec.class_path, ptype, cfg.registry.allowed_prefixes())
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {len(cfg.specs())} providers, valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
