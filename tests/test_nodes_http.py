"""http.request against a real HTTP server on loopback (tests/servers.py)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from engine import run_flow, validate
from tests.documents import chain, flow, manual, step
from tests.servers import EchoServer


def request(config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return chain(manual(), step("call", "http.request", config, settings=settings or None))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_get_sends_the_query_and_parses_a_json_answer(echo_server: EchoServer) -> None:
    document = request(
        {
            "url": f"{echo_server.url}/echo?fixed=1",
            "query": {"q": "{{ input.term }}", "page": 2, "exact": True, "tag": ["a", "b"]},
        }
    )

    result = await run_flow(document, {"term": "blue shoes"})

    assert result.status == "succeeded", result.error
    answer = result.output
    assert answer["status"] == 200
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["body"]["method"] == "GET"
    assert answer["body"]["query"] == {
        "fixed": "1",
        "q": "blue shoes",
        "page": "2",
        "exact": "true",
        "tag": "b",
    }
    assert echo_server.seen("/echo")[0].query.endswith("tag=a&tag=b")


async def test_post_sends_an_object_body_as_json(echo_server: EchoServer) -> None:
    document = request(
        {
            "method": "post",
            "url": f"{echo_server.url}/echo",
            "body": {"name": "{{ input.name }}", "tags": ["x"], "count": "{{ input.n }}"},
        }
    )

    result = await run_flow(document, {"name": "Ada", "n": 3})

    echoed = result.output["body"]
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["json"] == {"name": "Ada", "tags": ["x"], "count": 3}


async def test_a_text_body_is_sent_as_plain_text(echo_server: EchoServer) -> None:
    document = request(
        {"method": "PUT", "url": f"{echo_server.url}/echo", "body": "Hello {{ input.name }}"}
    )

    result = await run_flow(document, {"name": "Ada"})

    echoed = result.output["body"]
    assert (echoed["method"], echoed["body"]) == ("PUT", "Hello Ada")
    assert echoed["headers"]["content-type"] == "text/plain; charset=utf-8"


async def test_headers_are_sent_and_a_given_content_type_is_kept(echo_server: EchoServer) -> None:
    document = request(
        {
            "method": "POST",
            "url": f"{echo_server.url}/echo",
            "headers": {
                "Authorization": "Bearer {{ input.token }}",
                "X-Attempt": 2,
                "Content-Type": "application/vnd.api+json",
            },
            "body": {"a": 1},
        }
    )

    result = await run_flow(document, {"token": "s3cret"})

    headers = result.output["body"]["headers"]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-attempt"] == "2"
    assert headers["content-type"] == "application/vnd.api+json"
    assert result.output["body"]["json"] == {"a": 1}


async def test_a_text_answer_is_handed_on_as_text(echo_server: EchoServer) -> None:
    result = await run_flow(request({"url": f"{echo_server.url}/text"}), None)

    assert result.output["body"] == "plain words"
    assert result.output["headers"]["x-test-server"] == "echo"


async def test_an_answer_that_claims_json_but_is_not_is_handed_on_as_text(
    echo_server: EchoServer,
) -> None:
    result = await run_flow(request({"url": f"{echo_server.url}/says-json-but-is-not"}), None)

    assert result.status == "succeeded"
    assert result.output["body"] == "<html>oops</html>"


async def test_a_failure_status_fails_the_step_naming_status_address_and_answer(
    echo_server: EchoServer,
) -> None:
    url = f"{echo_server.url}/status/404"

    result = await run_flow(request({"url": url}), None)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "call"
    assert f"GET {url} answered 404 Not Found: status 404 body" in result.error["message"]


async def test_a_failure_status_is_handed_on_when_fail_on_status_is_off(
    echo_server: EchoServer,
) -> None:
    document = request({"url": f"{echo_server.url}/status/503", "fail_on_status": False})

    result = await run_flow(document, None)

    assert result.status == "succeeded"
    assert (result.output["status"], result.output["body"]) == (503, "status 503 body")


async def test_a_failure_status_can_be_routed_to_the_error_port(echo_server: EchoServer) -> None:
    document = flow(
        [
            manual(),
            step(
                "call",
                "http.request",
                {"url": f"{echo_server.url}/status/500"},
                settings={"on_error": "route"},
            ),
            step("fallback", "data.set", {"values": {"fell_back": True}, "keep_input": False}),
        ],
        [("start", "call"), ("call", "error", "fallback")],
    )

    result = await run_flow(document, None)

    assert result.status == "succeeded"
    assert result.output == {"fell_back": True}


async def test_nothing_listening_fails_with_connection_refused_in_plain_words() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"

    result = await run_flow(request({"url": url}), None)

    assert result.status == "failed"
    assert result.error is not None
    assert f"Could not connect to {url}: connection refused" in result.error["message"]


async def test_a_slow_server_fails_after_the_request_timeout(echo_server: EchoServer) -> None:
    url = f"{echo_server.url}/slow?seconds=2"

    result = await run_flow(request({"url": url, "timeout_s": 0.2}), None)

    assert result.status == "failed"
    assert result.error is not None
    assert f"No answer from {url} within 0.2 seconds." in result.error["message"]


async def test_many_requests_share_pooled_connections(echo_server: EchoServer) -> None:
    document = flow(
        [
            manual(),
            step("each", "logic.loop", {"items": "{{ input }}", "concurrency": 1}),
            step(
                "call",
                "http.request",
                {"url": f"{echo_server.url}/echo", "query": {"i": "{{ input }}"}},
                parent="each",
            ),
        ],
        [("start", "each")],
    )

    result = await run_flow(document, list(range(20)))

    assert result.status == "succeeded", result.error
    assert [r["body"]["query"]["i"] for r in result.output["items"]] == [str(i) for i in range(20)]
    seen = echo_server.seen("/echo")
    assert len(seen) == 20
    assert len({r.client_port for r in seen}) == 1, "every request opened its own connection"


async def test_requests_of_separate_runs_reuse_the_engines_client(echo_server: EchoServer) -> None:
    document = request({"url": f"{echo_server.url}/echo"})

    for _ in range(5):
        assert (await run_flow(document, None)).status == "succeeded"

    assert len({r.client_port for r in echo_server.seen("/echo")}) == 1


async def test_redirects_are_followed_to_the_final_answer(echo_server: EchoServer) -> None:
    result = await run_flow(request({"url": f"{echo_server.url}/redirect?to=/text"}), None)

    assert result.status == "succeeded"
    assert (result.output["status"], result.output["body"]) == (200, "plain words")


async def test_a_redirect_is_an_answer_of_its_own_when_following_is_off(
    echo_server: EchoServer,
) -> None:
    document = request(
        {
            "url": f"{echo_server.url}/redirect?to=/text",
            "follow_redirects": False,
            "fail_on_status": False,
        }
    )

    result = await run_flow(document, None)

    assert result.output["status"] == 302
    assert result.output["headers"]["location"] == "/text"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/file", "must start with http:// or https://"),
        ("example.com", "must start with http:// or https://"),
        ("http:///path", "has no server name"),
    ],
)
def test_the_address_must_be_an_http_or_https_url(url: str, words: str) -> None:
    problems = [p for p in validate(request({"url": url})) if p.level == "error"]

    assert [(p.node_id, p.field) for p in problems] == [("call", "url")]
    assert words in problems[0].message


def test_an_address_from_a_template_is_checked_when_the_step_runs() -> None:
    assert [p for p in validate(request({"url": "{{ input.url }}"})) if p.level == "error"] == []


async def test_an_address_from_a_template_that_is_not_http_fails_the_step() -> None:
    result = await run_flow(request({"url": "{{ input.url }}"}), {"url": "file:///etc/passwd"})

    assert result.status == "failed"
    assert result.error is not None
    assert "must start with http:// or https://" in result.error["message"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"url": "http://x", "method": "FETCH"}, "method"),
        ({"url": "http://x", "timeout_s": 0}, "timeout_s"),
        ({"url": "http://x", "query": {"filter": {"a": 1}}}, "query"),
        ({"url": "http://x", "headers": {"X-A": {"b": 1}}}, "headers.X-A"),
    ],
)
def test_request_config_mistakes_are_problems_of_their_field(
    config: dict[str, Any], field: str
) -> None:
    problems = [p for p in validate(request(config)) if p.level == "error"]

    assert [(p.node_id, p.field) for p in problems] == [("call", field)]
