"""``provider-registry apply FILE [--dry-run] [--prune]``: the running registry follows the file.

The file is read and its ``${VAR}``s interpolated here (this shell's
environment, as ``make serve`` does); the router plans and applies
(``POST /v1/admin/apply``). The plan is asked for first, as a dry run, so it
is printed even when applying then fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def run_apply(args: argparse.Namespace, call: Callable[..., Any]) -> int:
    """Print the plan (a dry run on the registry), then, unless --dry-run, apply and print what was done."""
    from deployments.apply_plan import CHANGES, file_document, format_plan
    from providers.errors import RegistryError

    try:
        doc = file_document(args.file)  # ${VAR}s from this shell's environment, as `make serve` does
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    plan = _apply_call(call, args, doc, dry_run=True)
    if isinstance(plan, int):
        return plan
    print(format_plan(plan["steps"], plan["unchanged"]))
    if not any(s["action"] in CHANGES for s in plan["steps"]):
        print("\nno changes to apply")
        return 0
    if args.dry_run:
        print("\ndry run: nothing changed")
        return 0
    done = _apply_call(call, args, doc, dry_run=False)
    if isinstance(done, int):
        return done
    print("\napplied:\n" + format_plan(done["done"]))
    return 0


def _apply_call(call: Callable[..., Any], args: argparse.Namespace, doc: dict[str, Any],
                dry_run: bool) -> dict[str, Any] | int:
    """The router's answer, or an exit code after printing why there is none."""
    r = call(args, "POST", "/v1/admin/apply", {"config": doc, "dry_run": dry_run, "prune": args.prune})
    if isinstance(r, int):
        return r
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not r.is_success:
        print(f"error: {(body.get('error') or {}).get('message') or r.text}", file=sys.stderr)
        return 1
    return body
