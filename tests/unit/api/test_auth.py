"""Who may call the REST API: Rocket.Chat headers, Bearer tokens, the admin key."""

from __future__ import annotations

import uuid

import httpx
import jwt
import pytest

from hub.model.auth import AuthError, verify_token
from tests.support.hubproc import (
    ADMIN_HEADERS,
    TEST_ADMIN_KEY,
    TEST_SECRET,
    rc_headers,
    user_token,
)
from tests.support.inproc import inproc_hub_fixture

hub = inproc_hub_fixture()
PRESENCE = "/api/v1/users.presence"


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def assert_401(response: httpx.Response, *secrets: str) -> str:
    """A Rocket.Chat style 401 whose message never echoes a credential."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["status"] == "error" and body["message"]
    for secret in secrets:
        assert secret not in response.text
    return str(body["message"])


async def test_missing_credentials_are_401(http: httpx.AsyncClient) -> None:
    """No credentials at all: 401 on reading and on writing."""
    assert "missing credentials" in assert_401(await http.get(PRESENCE))
    assert_401(await http.post("/api/v1/users.setStatus", json={"status": "busy"}))
    assert_401(await http.get("/api/v1/users.getPresence", params={"userId": "x"}))


@pytest.mark.parametrize("header", ["X-Auth-Token", "X-User-Id"])
async def test_half_of_the_rocketchat_pair_is_401(http: httpx.AsyncClient, header: str) -> None:
    """X-Auth-Token without X-User-Id (or the reverse) is 401 saying both are needed."""
    user = uid("u")
    headers = {header: rc_headers(user)[header]}
    assert "together" in assert_401(await http.get(PRESENCE, headers=headers), headers[header])


async def test_wrong_token_is_401(http: httpx.AsyncClient) -> None:
    """A garbage token, or one signed with another secret, is 401."""
    user = uid("u")
    assert_401(await http.get(PRESENCE, headers=rc_headers(user, "garbage")), "garbage")
    forged = jwt.encode({"sub": user}, "not-the-hub-secret-0123456789abcdefgh", "HS256")
    assert_401(await http.get(PRESENCE, headers=rc_headers(user, forged)), forged)
    assert_401(await http.get(PRESENCE, headers={"Authorization": f"Bearer {forged}"}), forged)


async def test_expired_token_is_401(http: httpx.AsyncClient) -> None:
    """An expired user token is 401."""
    user = uid("u")
    token = user_token(user, ttl_s=-60)
    assert "expired" in assert_401(await http.get(PRESENCE, headers=rc_headers(user, token)))


async def test_user_id_not_matching_token_is_401(http: httpx.AsyncClient) -> None:
    """X-User-Id must be the token's sub: someone else's id is 401."""
    token = user_token(uid("alice"))
    message = assert_401(await http.get(PRESENCE, headers=rc_headers(uid("bob"), token)), token)
    assert "does not match" in message


async def test_matching_rocketchat_pair_is_accepted(http: httpx.AsyncClient) -> None:
    """A user token with its own X-User-Id reads presence."""
    response = await http.get(PRESENCE, headers=rc_headers(uid("u")))
    assert response.status_code == 200 and response.json()["success"] is True


async def test_bearer_user_token_is_accepted(http: httpx.AsyncClient) -> None:
    """Authorization: Bearer <user token> reads presence and sets the user's own status."""
    user = uid("u")
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    response = await http.get(PRESENCE, headers=headers)
    assert response.status_code == 200 and response.json()["full"] is True
    response = await http.post("/api/v1/users.setStatus", json={"message": "hi"}, headers=headers)
    assert response.status_code == 200, response.text
    check = await http.get("/api/v1/users.getPresence", params={"userId": user}, headers=headers)
    assert check.status_code == 200 and check.json()["presence"] == "offline"


@pytest.mark.parametrize(
    "value",
    [f"Basic {TEST_ADMIN_KEY}", f"Token {TEST_ADMIN_KEY}", TEST_ADMIN_KEY, "Bearer"],
    ids=["basic", "token", "bare-key", "bearer-without-token"],
)
async def test_authorization_other_than_bearer_is_401(http: httpx.AsyncClient, value: str) -> None:
    """Only ``Bearer <token>`` is read from Authorization."""
    assert_401(await http.get(PRESENCE, headers={"Authorization": value}))


async def test_admin_key_is_accepted_as_bearer_and_as_x_auth_token(http: httpx.AsyncClient) -> None:
    """The admin key reads as Bearer, and as X-Auth-Token with any X-User-Id."""
    assert (await http.get(PRESENCE, headers=ADMIN_HEADERS)).status_code == 200
    headers = {"X-Auth-Token": TEST_ADMIN_KEY, "X-User-Id": "whoever"}
    assert (await http.get(PRESENCE, headers=headers)).status_code == 200


async def test_wrong_admin_key_is_401(http: httpx.AsyncClient) -> None:
    """A near-miss admin key is not the admin key."""
    wrong = TEST_ADMIN_KEY + "x"
    assert_401(await http.get(PRESENCE, headers={"Authorization": f"Bearer {wrong}"}), wrong)


async def test_admin_without_a_target_user_is_400(http: httpx.AsyncClient) -> None:
    """The Bearer admin acts for nobody in particular: setStatus needs userId or username."""
    response = await http.post(
        "/api/v1/users.setStatus", json={"status": "busy"}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 400
    assert "userId or username" in response.json()["error"]


# -- verify_token: one notion of expiry, valid Unicode claims ------------------------------

SECRET = "unit-secret-0123456789abcdef0123456789"


def signed(claims: dict[str, object]) -> str:
    return jwt.encode(claims, SECRET, "HS256")


@pytest.mark.parametrize("exp", ["1796000000", "9999999999", "soon", True, None, [1]])
def test_exp_that_is_not_a_json_number_is_refused(exp: object) -> None:
    """RFC 7519's NumericDate is a JSON number. PyJWT takes "exp": "<digits>" and checks it
    at hello, but the session's expiry timer needs a number: such a token is refused."""
    with pytest.raises(AuthError, match="exp must be a number"):
        verify_token(SECRET, signed({"sub": "u", "exp": exp}))


@pytest.mark.parametrize("exp", [1e300, -5, 10**20])
def test_exp_out_of_range_is_refused(exp: object) -> None:
    with pytest.raises(AuthError, match="exp is out of range"):
        verify_token(SECRET, signed({"sub": "u", "exp": exp}))


def test_claims_exp_is_the_value_checked() -> None:
    """Claims.exp is what the session enforces; it is the very number verify_token checked."""
    claims = verify_token(SECRET, signed({"sub": "u", "exp": 1_000_000_100.5}), now=1e9)
    assert claims.exp == 1_000_000_100.5
    with pytest.raises(AuthError, match="token expired"):
        verify_token(SECRET, signed({"sub": "u", "exp": 1_000_000_000}), now=1e9 + 3)


def test_nbf_in_the_future_and_string_iat_are_refused() -> None:
    with pytest.raises(AuthError, match="not valid yet"):
        verify_token(SECRET, signed({"sub": "u", "nbf": 2e9}), now=1e9)
    with pytest.raises(AuthError, match="iat must be a number"):
        verify_token(SECRET, signed({"sub": "u", "iat": "1"}))


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        ({"sub": "\ud800"}, "sub"),
        ({"sub": "u", "name": "a\udc00"}, "name"),
        ({"sub": "u", "username": "\ud800"}, "username"),
        ({"sub": "u", "roles": ["user", "\ud800"]}, "roles[1]"),
        ({"sub": "u", "metadata": {"nick": "\ud800"}}, "metadata.nick"),
    ],
)
def test_a_claim_with_a_lone_surrogate_is_refused_naming_it(
    claims: dict[str, object], field: str
) -> None:
    """PyJWT decodes "\\ud800" into a str no encoder accepts; the hub refuses the token."""
    with pytest.raises(AuthError, match="surrogate") as caught:
        verify_token(SECRET, signed(claims))
    assert f"claim {field} " in str(caught.value)


def test_a_valid_token_still_verifies() -> None:
    claims = verify_token(SECRET, signed({"sub": "ü-user", "name": "Zoë 🎉", "exp": 4e9}))
    assert (claims.user, claims.name, claims.exp) == ("ü-user", "Zoë 🎉", 4e9)


async def test_rest_refuses_a_surrogate_sub_and_a_string_exp_with_401(
    http: httpx.AsyncClient,
) -> None:
    """The REST credentials go through the same verify_token."""
    bad_sub = jwt.encode({"sub": "\ud800"}, TEST_SECRET, "HS256")
    assert "surrogate" in assert_401(
        await http.get(PRESENCE, headers={"Authorization": f"Bearer {bad_sub}"}), bad_sub
    )
    string_exp = jwt.encode({"sub": uid("s"), "exp": "9999999999"}, TEST_SECRET, "HS256")
    assert "exp" in assert_401(
        await http.get(PRESENCE, headers={"Authorization": f"Bearer {string_exp}"}), string_exp
    )
