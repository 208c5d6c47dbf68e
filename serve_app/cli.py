"""``provider-registry`` / ``python -m serve_app``: the operator's command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="provider-registry", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="start Ray locally and serve the registry on a config")
    run.add_argument("--config", default="config/providers.yaml", help="providers.yaml to serve")
    check = sub.add_parser("check", help="validate a providers.yaml without starting anything")
    check.add_argument("--config", default="config/providers.yaml")
    args = parser.parse_args(argv)

    if args.command == "serve":
        from serve_app.main import serve_forever

        return serve_forever(args.config)
    if args.command == "check":
        from providers.errors import RegistryError
        from providers.registry.config import load_config
        from providers.registry.loading import load_provider_class

        try:
            cfg = load_config(args.config)
            for ptype, name, spec in cfg.specs():
                load_provider_class(spec.class_path, ptype, cfg.registry.allowed_prefixes())
        except RegistryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.config}: {len(cfg.specs())} providers, valid")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
