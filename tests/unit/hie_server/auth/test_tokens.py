"""TokenVerifier against a real local HTTP JWKS endpoint (RFC 7519 §7.2, RFC 8725 §3.1, §3.2)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from ehr_store import Unauthenticated
from hie_server.auth import AuthSettings, TokenVerifier, bearer_token


def verifier(issuer: str, **kw: object) -> TokenVerifier:
    return TokenVerifier(AuthSettings(issuer=issuer, jwks_min_refresh_seconds=0.0, **kw))  # type: ignore[arg-type]


def refused(v: TokenVerifier, token: str, words: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        v.verify(token)
    assert words in info.value.diagnostics


def test_valid_token_gives_principal(local_issuer):
    v = verifier(local_issuer.issuer)
    p = v.verify(local_issuer.token(scope="openid user/*.rs"))
    assert (p.username, p.facility, p.county) == ("doctor.ttwsy", "TTWSY", "441821")
    assert p.roles == {"township-doctor"} and "user/*.rs" in p.scopes


def test_es256_accepted(local_issuer):
    kid = local_issuer.add_key("ES256")
    assert verifier(local_issuer.issuer).verify(local_issuer.token(kid)).subject == "u-1"


def test_expired(local_issuer):
    refused(
        verifier(local_issuer.issuer, clock_skew_seconds=5),
        local_issuer.token(exp=int(time.time()) - 60),
        "expired",
    )


def test_clock_skew_tolerated(local_issuer):
    v = verifier(local_issuer.issuer, clock_skew_seconds=30)
    assert v.verify(local_issuer.token(exp=int(time.time()) - 10)).subject == "u-1"


def test_not_yet_valid(local_issuer):
    refused(
        verifier(local_issuer.issuer, clock_skew_seconds=5),
        local_issuer.token(nbf=int(time.time()) + 600),
        "not yet valid",
    )


def test_issued_in_the_future(local_issuer):
    now = int(time.time())
    refused(
        verifier(local_issuer.issuer, clock_skew_seconds=5),
        local_issuer.token(iat=now + 600, exp=now + 900),
        "not yet valid",
    )


def test_wrong_issuer(local_issuer):
    refused(
        verifier(local_issuer.issuer), local_issuer.token(iss=local_issuer.url + "/realms/other"), "issuer"
    )


def test_wrong_audience(local_issuer):
    refused(verifier(local_issuer.issuer), local_issuer.token(aud="account", azp="hie-cli"), "not meant for")


def test_audience_by_azp(local_issuer):
    assert verifier(local_issuer.issuer).verify(local_issuer.token(aud=None, azp="hie-api")).subject == "u-1"


def test_id_token_refused(local_issuer):
    refused(verifier(local_issuer.issuer), local_issuer.token(typ="ID"), "not an access token")


def test_alg_none_refused(local_issuer):
    token = jwt.encode(local_issuer.claims(), None, algorithm="none")
    refused(verifier(local_issuer.issuer), token, "'none' is not accepted")


def test_hs256_signed_with_public_key_refused(local_issuer):
    v = verifier(local_issuer.issuer)
    v.verify(local_issuer.token())  # load the keys
    kid = local_issuer.keys[0][0]
    public_pem = (
        local_issuer.keys[0][1]
        .public_key()
        .public_bytes(
            encoding=__import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
            ).Encoding.PEM,
            format=__import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]
            ).PublicFormat.SubjectPublicKeyInfo,
        )
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()).rstrip(
        b"="
    )
    payload = base64.urlsafe_b64encode(json.dumps(local_issuer.claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    refused(v, b".".join([header, payload, signature]).decode(), "'HS256' is not accepted")


def test_tampered_payload_refused(local_issuer):
    token = local_issuer.token()
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["realm_access"] = {"roles": ["hie-admin"]}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused(verifier(local_issuer.issuer), f"{head}.{forged}.{sig}", "signature")


def test_unknown_kid_then_rotation(local_issuer):
    v = verifier(local_issuer.issuer)
    assert v.verify(local_issuer.token()).subject == "u-1"
    fetches = v.jwks.fetches
    for _ in range(20):  # cached: no fetch per request
        v.verify(local_issuer.token())
    assert v.jwks.fetches == fetches
    new_kid = local_issuer.rotate()
    token = local_issuer.token(new_kid)
    assert v.needs_fetch(token)
    assert v.verify(token).subject == "u-1"
    assert v.jwks.fetches == fetches + 1


def test_unknown_kid_refetch_is_rate_limited(local_issuer):
    v = TokenVerifier(AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=60))
    v.verify(local_issuer.token())
    fetches = v.jwks.fetches
    stranger = local_issuer.token(kid=local_issuer.keys[0][0]).split(".")
    head = json.loads(base64.urlsafe_b64decode(stranger[0] + "=="))
    head["kid"] = "nobody"
    forged = base64.urlsafe_b64encode(json.dumps(head).encode()).rstrip(b"=").decode()
    for _ in range(5):
        refused(v, f"{forged}.{stranger[1]}.{stranger[2]}", "unknown key")
    assert v.jwks.fetches == fetches


def test_garbage_and_header_parsing():
    with pytest.raises(Unauthenticated):
        bearer_token(None)
    with pytest.raises(Unauthenticated):
        bearer_token("Basic abc")
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    v = TokenVerifier(AuthSettings(issuer="http://127.0.0.1:9/realms/x"))
    with pytest.raises(Unauthenticated):
        v.verify("not-a-jwt")
