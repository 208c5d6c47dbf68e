"""The questions ``add-provider`` asks on a terminal for what its flags left out."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any

from providers.interfaces import interface_for
from providers.types import ProviderType
from serve_app.scaffold.catalog import SPECS
from serve_app.scaffold.checks import (
    check_class_name,
    check_name,
    config_keys_from_flags,
    from_flag,
    parse_config_key,
    parse_type,
    suggest_class_name,
)
from serve_app.scaffold.config_file import taken_names
from serve_app.scaffold.model import Request, ScaffoldError
from serve_app.scaffold.yaml_text import yaml_scalar


class Prompter:
    """Asks for what the flags left out; a wrong answer is explained and asked again."""

    def __init__(self, ask: Callable[[str], str]) -> None:
        self._ask = ask

    def fill(self, args: argparse.Namespace, request: Request) -> Request | None:
        request.ptype = from_flag(parse_type, args.ptype, "--type") if args.ptype else self._type()
        taken = taken_names(request.config_path, request.ptype)
        if args.name:
            request.name = from_flag(check_name, args.name, "--name")
        else:
            request.name = self.ask("Provider name (its key in providers.yaml)", lambda t: _free_name(t, taken))
        if args.class_name:
            request.class_name = from_flag(check_class_name, args.class_name, "--class-name")
        else:
            request.class_name = self.ask("Class name", check_class_name,
                                          suggest_class_name(request.name, request.ptype))
        request.config_keys = (config_keys_from_flags(args.config_key, request.ptype) if args.config_key
                               else self._config_keys(request.ptype))
        return request if self._confirm(request) else None

    def ask(self, question: str, check: Callable[[str], Any], default: str | None = None) -> Any:
        prompt = f"{question} [{default}]: " if default else f"{question}: "
        while True:
            answer = self._line(prompt).strip() or (default or "")
            try:
                return check(answer)
            except ValueError as exc:
                print(f"  {exc}; try again", flush=True)

    def _line(self, prompt: str) -> str:
        try:
            return self._ask(prompt)
        except EOFError:
            raise ScaffoldError("the input ended before every question was answered") from None

    def _type(self) -> ProviderType:
        print("Provider types:")
        for i, member in enumerate(ProviderType, start=1):
            print(f"  {i}) {member.value:<15} {interface_for(member).__name__}")
        return self.ask(f"Type (1-{len(ProviderType)} or a name)", parse_type)

    def _config_keys(self, ptype: ProviderType) -> dict[str, Any]:
        builtins = SPECS[ptype].builtins
        if builtins:
            print("The placeholder reads: " + ", ".join(f"{k} ({b.comment})" for k, b in builtins.items()))
        print("Config keys, one KEY=DEFAULT per line (the default is YAML: 8, true, text); empty line to finish:")
        keys: dict[str, Any] = {}
        while True:
            line = self._line("  key> ").strip()
            if not line:
                return keys
            try:
                key, value = parse_config_key(line, ptype)
            except ValueError as exc:
                print(f"  {exc}; try again", flush=True)
                continue
            keys[key] = value

    def _confirm(self, request: Request) -> bool:
        print("Same without prompts: " + command_line(request))
        answer = self._line("Write the provider, its tests and its config entry? [Y/n]: ").strip().lower()
        return answer in ("", "y", "yes")


def _free_name(text: str, taken: set[str]) -> str:
    name = check_name(text)
    if name in taken:
        raise ValueError(f"{name!r} is already in providers.yaml")
    return name


def command_line(request: Request) -> str:
    parts = ["provider-registry", "add-provider", "--type", request.ptype.value, "--name", request.name,
             "--class-name", request.class_name]
    for key, value in request.config_keys.items():
        parts += ["--config-key", f"{key}={yaml_scalar(value)}"]
    parts += ["--package-dir", str(request.package_dir), "--tests-dir", str(request.tests_dir)]
    parts += ["--config", str(request.config_path)] if request.config_path else ["--no-config"]
    return " ".join(shlex.quote(p) for p in parts)
