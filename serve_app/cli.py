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

Operations go to a running registry over its admin HTTP API (``--url``,
default http://127.0.0.1:8000) with the token from the environment variable
named by ``--token-env`` (default PROVIDER_REGISTRY_ADMIN_TOKEN).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    for name in ("list", "stats"):
        sub.add_parser(name, parents=[remote])
    target = argparse.ArgumentParser(add_help=False, parents=[remote])
    target.add_argument("type")
    target.add_argument("name")
    for name in ("health", "reload", "rollback", "delete"):
        sub.add_parser(name, parents=[target])
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
    mon = sub.add_parser("monitoring", parents=[remote])
    mon.add_argument("state", choices=["on", "off"])
    return p


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None, admin: bool = True) -> int:
    import httpx

    headers = {}
    if admin:
        token = os.environ.get(args.token_env, "")
        if not token:
            print(f"error: set {args.token_env} to the registry's admin token", file=sys.stderr)
            return 2
        headers["Authorization"] = f"Bearer {token}"
    try:
        r = httpx.request(method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=900)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1
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
    if args.command == "list":
        return _request(args, "GET", "/v1/providers", admin=False)
    if args.command == "stats":
        return _request(args, "GET", "/v1/stats", admin=False)
    if args.command == "monitoring":
        return _request(args, "POST", "/v1/admin/monitoring", {"enabled": args.state == "on"})
    if args.command == "reembed":
        return _reembed(args)
    base = f"/v1/admin/providers/{args.type}/{args.name}"
    if args.command == "health":
        return _request(args, "GET", f"/v1/providers/{args.type}/{args.name}/health", admin=False)
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

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: set {args.token_env} to the registry's admin token", file=sys.stderr)
        return 2
    if args.abort:
        return _request(args, "DELETE", f"/v1/admin/vector_stores/{args.store}/reembed")
    body = {k: v for k, v in {"embedder": args.embedder, "target": args.target,
                              "batch_size": args.batch_size}.items() if v is not None}
    url = f"{args.url.rstrip('/')}/v1/admin/vector_stores/{args.store}/reembed"

    async def step() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=900) as client:
            r = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
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


def _check(path: str) -> int:
    from providers.errors import RegistryError
    from providers.registry.config import load_config
    from providers.registry.loading import load_provider_class

    try:
        cfg = load_config(path)
        for ptype, name, spec in cfg.specs():
            load_provider_class(spec.class_path, ptype, cfg.registry.allowed_prefixes())
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {len(cfg.specs())} providers, valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
