"""The event log without Ray: bounds, merging across replicas, the query's checks,
breaker transitions heard through the real `FallbackCaller`, and the status page's
routes in the app `build_http_app` makes."""

from __future__ import annotations

import re

import httpx
import pytest

from deployments.events import MAX_LIMIT, EventLog, merge_events, parse_query
from deployments.http_app import build_http_app
from deployments.ui_api import STATIC_DIR
from providers.errors import InvalidRequestError
from providers.registry.breaker import BreakerOptions
from providers.registry.routing import FallbackCaller


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_the_log_is_bounded_and_keeps_the_newest():
    log = EventLog("r1", max_events=3, clock=Clock())
    for v in range(1, 6):
        log.record("swapped", "embeddings/a", v)
    assert [e["version"] for e in log.events] == [3, 4, 5]
    assert [e["id"] for e in log.events] == ["r1:3", "r1:4", "r1:5"]


def test_detail_is_scrubbed_and_cut():
    log = EventLog("r1", scrub=lambda text: text.replace("s3cret", "***"))
    event = log.record("swap_failed", "embeddings/a", 2, "password s3cret refused " + "x" * 2000)
    assert "s3cret" not in event["detail"] and event["detail"].startswith("password *** refused")
    assert len(event["detail"]) == 500


async def test_read_merges_replicas_newest_first_with_since_and_limit():
    clock = Clock()
    a, b = EventLog("a", clock=clock), EventLog("b", clock=clock)
    a.record("registered", "embeddings/x", 1)
    b.record("swapped", "embeddings/x", 2)
    a.record("breaker_opened", "embeddings/x", detail="3 consecutive failures")
    merged = merge_events([a.events, b.events], since=None, limit=10)
    assert [e["kind"] for e in merged] == ["breaker_opened", "swapped", "registered"]
    first = merged[-1]["at"]
    assert [e["kind"] for e in merge_events([a.events, b.events], since=first, limit=10)] == \
        ["breaker_opened", "swapped"]
    assert [e["kind"] for e in merge_events([a.events, b.events], since=None, limit=1)] == ["breaker_opened"]
    answer = await a.read(limit=10)  # no store: this replica only
    assert [e["kind"] for e in answer["events"]] == ["breaker_opened", "registered"]
    assert answer["router_replicas"] == ["a"]


def test_events_of_one_second_keep_their_order():
    log = EventLog("r", clock=lambda: 5.0)
    for kind in ("swapped", "breaker_opened", "breaker_closed"):
        log.record(kind)
    assert [e["kind"] for e in merge_events([log.events], None, 10)] == ["breaker_closed", "breaker_opened", "swapped"]


@pytest.mark.parametrize(("since", "limit", "field"), [
    (None, "abc", "limit"), (None, "0", "limit"), (None, str(MAX_LIMIT + 1), "limit"), (None, "-1", "limit"),
    (None, "\u00b2", "limit"), (None, "1.5", "limit"), ("yesterday", None, "since"), ("nan", None, "since"),
    ("1e400", None, "since"),
])
def test_bad_query_values_name_their_field(since, limit, field):
    with pytest.raises(InvalidRequestError) as caught:
        parse_query(since, limit)
    assert caught.value.field == field


def test_good_query_values():
    assert parse_query(None, None) == (None, 100)
    assert parse_query("1700000000.5", " 20 ") == (1700000000.5, 20)


async def test_breaker_opens_and_closes_reach_the_log_through_the_caller():
    log = EventLog("r1")
    options = BreakerOptions(failure_threshold=2, open_s=60)
    caller = FallbackCaller(breaker_options=lambda key: options, on_breaker=log.on_breaker)
    failing = {"bad": True}

    async def attempt(name, timeout):
        if failing[name]:
            raise RuntimeError("down on purpose")
        return name

    for _ in range(2):
        with pytest.raises(Exception, match="down on purpose"):
            await caller.call("embeddings", ["bad"], attempt, lambda n: 1.0)
    assert [(e["kind"], e["provider"]) for e in log.events] == [("breaker_opened", "embeddings/bad")]
    assert "2 consecutive failures" in log.events[0]["detail"]
    caller.breaker("embeddings/bad").probe_healthy()  # half-open: a trial is due, no event
    assert len(log.events) == 1
    failing["bad"] = False
    assert await caller.call("embeddings", ["bad"], attempt, lambda n: 1.0) == "bad"
    assert [e["kind"] for e in log.events] == ["breaker_opened", "breaker_closed"]


def test_a_failing_listener_never_fails_a_call():
    def broken(key, state, reason):
        raise RuntimeError("listener bug")

    caller = FallbackCaller(breaker_options=lambda key: BreakerOptions(failure_threshold=1), on_breaker=broken)
    caller.breaker("embeddings/x").record_failure("boom")
    assert caller.breaker("embeddings/x").state.value == "open"


# -- the routes -------------------------------------------------------------------------------
def _client(events: EventLog | None = None) -> httpx.AsyncClient:
    from types import SimpleNamespace

    core = SimpleNamespace(settings=SimpleNamespace(max_request_bytes=1 << 20, http_host="127.0.0.1"))
    app = build_http_app(core, observability=None, lifecycle=None, rollout=None, vectors=None, events=events)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


async def test_events_endpoint_answers_json_and_refuses_bad_values_by_name():
    log = EventLog("r1")
    log.record("swapped", "embeddings/<b>x</b>", 2, "v1 -> v2")
    async with _client(log) as client:
        r = await client.get("/v1/events", params={"limit": "5"})
        assert r.status_code == 200 and r.json()["events"][0]["provider"] == "embeddings/<b>x</b>"
        r = await client.get("/v1/events", params={"limit": "abc"})
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "limit" and "abc" in r.json()["error"]["message"]
        r = await client.get("/v1/events", params={"since": "soon"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "since"


async def test_root_redirects_to_the_page_and_the_page_loads_only_its_own_files():
    async with _client() as client:
        r = await client.get("/")
        assert r.status_code == 307 and r.headers["location"] == "/ui"
        page = await client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        # Every file the page names is served by the registry itself.
        named = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert {"ui/ui.js", "ui/ui.css", "ui/favicon.svg"} <= set(named)
        spec = (await client.get("/openapi.json")).json()["paths"]
        assert "/v1/events" in spec and "/ui" not in spec and "/" not in spec
        for ref in named:
            assert not ref.startswith(("http:", "https:", "//")), ref
            if ref.startswith("v1/"):  # the footer's links to the JSON it reads
                assert "/" + ref in spec, ref
            else:
                assert (await client.get("/" + ref)).status_code == 200, ref
        assert (await client.get("/ui/ui.js")).headers["content-type"].startswith("text/javascript")
        r = await client.get("/ui/nothing.js")
        assert r.status_code == 404 and r.json()["error"]["param"] == "name"
        for bad in ("/ui/..%2Fevents.py", "/ui/%2e%2e", "/ui/events.py", "/ui/ui_api.py"):  # only the page's files
            assert (await client.get(bad)).status_code == 404, bad


def test_the_script_writes_data_as_text_only():
    """No innerHTML/outerHTML/insertAdjacentHTML/document.write: data cannot become markup."""
    script = (STATIC_DIR / "ui.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name  # no CDN, no other origin
