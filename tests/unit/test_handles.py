"""`deployments.handles.ReadsByValue` without Ray: the transport chosen per call, only the handle
used looked up, and an answer too large for gRPC asked again by reference.

The handles here are stand-ins for Serve's `DeploymentHandle` (whose attribute lookup makes a new
handle); the real ones are exercised in tests/integration/test_direct_path.py."""

from __future__ import annotations

import asyncio

import grpc

from deployments.handles import ReadsByValue, provider_call_repeatable


class _Handle:
    def __init__(self, name: str, fail_with: BaseException | None = None) -> None:
        self.name, self.fail_with, self.lookups, self.calls = name, fail_with, [], []

    def __getattr__(self, method: str):
        self.lookups.append(method)
        handle = self

        class _Bound:
            def remote(self, *args, **kwargs):
                handle.calls.append((method, args))

                async def answer():
                    if handle.fail_with is not None:
                        raise handle.fail_with
                    return handle.name

                return asyncio.ensure_future(answer())

        return _Bound()


class _TooLarge(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_read_goes_by_value_and_looks_up_only_that_handle():
    by_ref, by_value = _Handle("ref"), _Handle("value")
    handle = ReadsByValue(by_ref, by_value, provider_call_repeatable)
    assert await handle.invoke.remote("search_similar", [[0.1]], {}) == "value"
    assert by_value.lookups == ["invoke"] and by_ref.lookups == []


async def test_a_write_goes_by_reference():
    by_ref, by_value = _Handle("ref"), _Handle("value")
    handle = ReadsByValue(by_ref, by_value, provider_call_repeatable)
    assert await handle.invoke.remote("add_documents", [[]], {}) == "ref"
    assert by_ref.lookups == ["invoke"] and by_value.lookups == []


async def test_an_answer_too_large_for_grpc_is_asked_again_by_reference():
    by_ref, by_value = _Handle("ref"), _Handle("value", fail_with=_TooLarge())
    handle = ReadsByValue(by_ref, by_value, provider_call_repeatable)
    assert await handle.invoke.remote("get_document", ["d1"], {}) == "ref"
    assert by_value.calls == by_ref.calls == [("invoke", ("get_document", ["d1"], {}))]


async def test_another_error_of_a_read_is_raised_as_it_is():
    by_ref, by_value = _Handle("ref"), _Handle("value", fail_with=ValueError("bad"))
    handle = ReadsByValue(by_ref, by_value, provider_call_repeatable)
    try:
        await handle.invoke.remote("get_document", ["d1"], {})
    except ValueError as exc:
        assert str(exc) == "bad"
    else:
        raise AssertionError("the read's error was swallowed")
    assert by_ref.calls == []
