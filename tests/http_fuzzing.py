"""Fuzzing one HTTP operation from the served OpenAPI spec (schemathesis + hypothesis),
shared by tests/integration/test_http_fuzz.py and benchmarks/reliability_report.py.

Valid and invalid requests alike; a failure is a 5xx or an answer outside the spec
(an undocumented status, another content type, a body that breaks its schema).
Derandomized, so a failure reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Every check that judges one response but one: positive_data_acceptance. These cases
# reach real providers (names made for the test), where a schema-valid body can
# still break a rule of the data: a vector of another dimension than the store's,
# a relationship to an entity that does not exist, a Cypher write clause without
# the admin token, episodes sent to a bare graph engine. Those are 400s naming the
# field, by design. Schemathesis' whole set (`--checks all`, positive data, the
# stateful checks and the method probes included) runs over the served spec in
# tests/integration/test_http_fuzz.py::test_schemathesis_all_checks_pass.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, missing_required_header]


def fuzz_operation(operation: Any, path: str, base_url: str, examples: int,
                   headers: dict[str, str] | None = None,
                   skip: Callable[[Any], bool] = lambda case: False,
                   strategy_for: Callable[[GenerationMode], st.SearchStrategy] | None = None,
                   timeout: float = 120) -> tuple[int, list[str]]:
    """Send up to ``examples`` positive and as many negative cases; (requests sent, failures).

    ``skip(case)`` drops a case unsent (e.g. an admin call naming a provider in use);
    ``strategy_for(mode)`` replaces the operation's own case strategy.
    """
    sent, failures = [0], []

    def send(case: Any) -> None:
        if skip(case):
            return
        response = case.call(base_url=base_url, headers=headers, timeout=timeout)
        sent[0] += 1
        if path.endswith("/health") and response.status_code == 503 and "status" in response.json():
            return  # an unhealthy provider's own report: 503 is its documented answer for load balancers
        if response.status_code >= 500:
            failures.append(f"{response.status_code} for {case.as_curl_command()}: {response.text[:300]}")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # schemathesis raises a group of failures; keep the text
            failures.append(f"{type(exc).__name__} for {case.as_curl_command()}: {str(exc)[:500]}")

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = strategy_for(mode) if strategy_for else operation.as_strategy(mode)
        run = settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                       phases=[Phase.explicit, Phase.generate],
                       suppress_health_check=list(HealthCheck))(given(case=strategy)(send))
        try:
            run()
        except Unsatisfiable:
            # Only strings in the path and no body or query: nothing can be made invalid.
            if mode is GenerationMode.POSITIVE:
                raise
    return sent[0], failures
