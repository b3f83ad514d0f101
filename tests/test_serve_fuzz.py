"""Schemathesis against the server's own OpenAPI schema: generated requests (valid and invalid) never get a 500,
and every response matches the status codes, content types and bodies the schema documents. Kept to a few
seconds: few examples per operation, no shrinking."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402

from ticketpack.serve.app import create_app  # noqa: E402
from ticketpack.serve.config import ModelSource, ServeConfig  # noqa: E402
from ticketpack.serve.models import load_models  # noqa: E402


@pytest.fixture(scope="module")
def asgi_app(exported_digits, exported_text):
    config = ServeConfig(models=[ModelSource(name="digits", path=exported_digits),
                                 ModelSource(name="reviews", path=exported_text)],
                         max_batch=8, max_text_chars=500, threads=1, provider="cpu")
    app = create_app(config, load_models(config, validate=False))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    with TestClient(app):  # runs the lifespan (the inference pool) for the whole module
        yield app


@pytest.fixture(scope="module")
def api_schema(asgi_app):
    return schemathesis.openapi.from_asgi("/openapi.json", asgi_app)


def test_server_answers_generated_requests_without_500s_and_as_documented(api_schema):
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert "POST /v1/models/{name}/predict" in labels and "GET /v1/models" in labels
    assert "POST /v2/models/{name}/infer" in labels and "GET /v2/models/{name}" in labels  # the Open Inference Protocol
    checks = (schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
              schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance)
    seen: dict[str, set[int]] = {}

    for op in operations:
        @settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            assert response.status_code < 500, f"{op.label}: {response.status_code} {response.text}"
            case.validate_response(response, checks=checks)
            seen.setdefault(op.label, set()).add(response.status_code)

        check()
    assert set(seen) == set(labels)  # every operation was exercised
