"""``apply``: make the running registry follow a providers.yaml, one planned step at a time.

A part of the router, given the core (table, settings), the lifecycle
(register, fallback, delete) and the rollout (the zero-downtime swap). The
plan comes from `deployments.apply_plan` (pure, tested without Ray); each
step runs through the same method a Python or HTTP caller reaches, so it
takes the registry's change lock and deploys, checks and flips exactly as a
single register or swap does.

A step that fails stops the apply: the steps before it stay done (each left
the registry consistent), none after it runs, and the error names the step
and what was done, so the operator can fix the file and apply it again (the
done steps then plan as unchanged).
"""

from __future__ import annotations

import asyncio
from typing import Any

from deployments.apply_plan import Plan, Step, parse_apply_body, plan_apply
from deployments.lifecycle import Lifecycle
from deployments.rollout import Rollout
from deployments.router_core import RouterCore
from providers.errors import RegistryError
from providers.registry.config import RegistryConfig


class Applier:
    def __init__(self, core: RouterCore, lifecycle: Lifecycle, rollout: Rollout) -> None:
        self.core, self.lifecycle, self.rollout = core, lifecycle, rollout
        # Two applies in one replica would plan from one table and then race; steps
        # already serialise across replicas through the core's change lock.
        self._lock = asyncio.Lock()

    async def apply(self, doc: dict[str, Any] | RegistryConfig, dry_run: bool = False,
                    prune: bool = False) -> dict[str, Any]:
        """Plan ``doc`` (a providers.yaml mapping, interpolated) against the live table; unless
        ``dry_run``, run the plan. Returns the plan and, after a run, what was done."""
        config = doc if isinstance(doc, RegistryConfig) else parse_apply_body(doc)
        async with self._lock:
            await self.core.refresh()
            plan = plan_apply(self.core.table, config, self.core.settings, prune)
            result: dict[str, Any] = {**plan.to_dict(), "dry_run": dry_run, "prune": prune, "done": []}
            if not dry_run:
                await self._run(plan, result["done"])
        return result

    async def _run(self, plan: Plan, done: list[dict[str, Any]]) -> None:
        for step in plan.changes:
            try:
                outcome = await self._step(step)
            except Exception as exc:
                raise _stopped_at(step, done, exc) from None
            done.append({**step.to_dict(), "result": outcome})

    async def _step(self, step: Step) -> dict[str, Any]:
        ptype, name = step.target()
        if step.action == "register":
            spec = step.spec.model_dump(mode="json", by_alias=True)
            cls, config, metadata = spec.pop("class"), spec.pop("config"), spec.pop("metadata")
            return await self.lifecycle.register_provider(ptype, name, cls, config, metadata, spec)
        if step.action == "swap":
            return await self.rollout.swap_provider(ptype, name, step.spec.model_dump(mode="json", by_alias=True))
        if step.action == "fallback":
            return await self.lifecycle.set_fallback_provider(ptype, name, step.fallback)
        if step.action == "delete":
            return await self.lifecycle.delete_provider(ptype, name)
        raise ValueError(f"unknown plan action {step.action!r}")  # plan_apply makes none other


def _stopped_at(step: Step, done: list[dict[str, Any]], exc: BaseException) -> BaseException:
    """``exc`` (its type kept, so HTTP answers its status) saying where the apply stopped."""
    before = ", ".join(f"{d['action']} {d['provider']}" for d in done) or "nothing"
    message = f"apply stopped at {step.action} {step.key} ({exc}); done before it: {before}; nothing after it ran"
    if isinstance(exc, RegistryError):
        exc.args = (message,)  # str() of these errors is their first argument
        return exc
    return RegistryError(message)
