"""``provider-registry add-provider``: its flags, and the run from flags (or prompts) to files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from providers.types import ProviderType
from serve_app.scaffold.checks import (
    check_class_name,
    check_name,
    config_keys_from_flags,
    from_flag,
    parse_type,
    suggest_class_name,
)
from serve_app.scaffold.model import EXIT_FAILED, Plan, Request, ScaffoldError
from serve_app.scaffold.planning import display_path, generate
from serve_app.scaffold.prompts import Prompter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", dest="ptype", metavar="TYPE",
                   help="provider type: " + ", ".join(m.value for m in ProviderType))
    p.add_argument("--name", help="the provider's name in providers.yaml")
    p.add_argument("--class-name", help="the Python class (default: from --name and the type, e.g. MyEmbedder)")
    p.add_argument("--config-key", action="append", default=[], metavar="KEY=DEFAULT",
                   help="a config key the provider reads, with its default (repeatable; the default is YAML)")
    p.add_argument("--package-dir", default="providers/custom", help="where the module goes (default: %(default)s)")
    p.add_argument("--tests-dir", default="tests/custom", help="where its tests go (default: %(default)s)")
    p.add_argument("--config", default="config/providers.yaml", help="providers.yaml to add the entry to")
    p.add_argument("--no-config", action="store_true", help="do not touch providers.yaml")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--interactive", action="store_true",
                   help="prompt for what the flags leave out (the default when stdin is a terminal)")


def run(args: argparse.Namespace, ask: Callable[[str], str] = input) -> int:
    """``provider-registry add-provider``; 0 done, 1 failed, 2 a flag or an answer is wrong."""
    try:
        request = _request_from(args, ask)
        if request is None:
            print("nothing written", file=sys.stderr)
            return EXIT_FAILED
        result, notes = generate(request)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    _report(result, notes)
    return 0


def _request_from(args: argparse.Namespace, ask: Callable[[str], str]) -> Request | None:
    config_path = None if args.no_config else Path(args.config)
    base = Request(ptype=ProviderType.EMBEDDING, name="", class_name="", package_dir=Path(args.package_dir),
                   tests_dir=Path(args.tests_dir), config_path=config_path, force=args.force)
    interactive = args.interactive or (sys.stdin.isatty() and not (args.ptype and args.name))
    if not interactive:
        return _from_flags(args, base)
    return Prompter(ask).fill(args, base)


def _from_flags(args: argparse.Namespace, request: Request) -> Request:
    for flag, value in (("--type", args.ptype), ("--name", args.name)):
        if not value:
            raise ScaffoldError("is required (or run add-provider in a terminal to be asked)", flag)
    request.ptype = from_flag(parse_type, args.ptype, "--type")
    request.name = from_flag(check_name, args.name, "--name")
    request.class_name = from_flag(check_class_name, args.class_name or _default_class(request), "--class-name")
    request.config_keys = config_keys_from_flags(args.config_key, request.ptype)
    return request


def _default_class(request: Request) -> str:
    suggestion = suggest_class_name(request.name, request.ptype)
    if suggestion is None:
        raise ScaffoldError(f"no class name can be made from {request.name!r}; give one", "--class-name")
    return suggestion


def _report(result: Plan, notes: list[str]) -> None:
    root = result.request.root
    for path in result.files:
        print(f"wrote {display_path(path, root)}")
    if result.config_edit is not None:
        print(f"added {result.request.ptype.value}/{result.request.name} to {result.request.config_path}")
    for note in notes:
        print(f"note: {note}")
    print("next:\n"
          f"  python -m pytest {display_path(result.test_path, root)} -q   # passes as generated\n"
          f"  grep -n 'TODO:' {display_path(result.module_path, root)}   # what a real implementation replaces")
    if result.request.config_path is not None:
        print(f"  provider-registry check --config {result.request.config_path}")
