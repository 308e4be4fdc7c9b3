"""OAUTHBEARER on the Kafka listener (--oauth-jwks): JWTs signed by keys of
a JWKS file, with librdkafka (confluent-kafka's oauth_cb) and kafka-python
(a token provider); expired, untrusted and wrongly addressed tokens
refused; and KIP-368: a login's lifetime is told to the client, clients
authenticate again before it ends (as the same principal only), and a
connection that does not is closed."""

import json
import socket
import struct
import time
import uuid
import warnings

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from test_sasl import SASL, _read_frame, _request, add_user, librdkafka_login_error, sasl_conf

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt

ISSUER = "https://idp.test"


class Keys:
    """An RSA and an EC key, the JWKS file of their public halves, and a
    third key nobody trusts."""

    def __init__(self, tmp_path):
        self.rsa = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "rsa-1"})
        self.ec = JsonWebKey.generate_key("EC", "P-256", is_private=True, options={"kid": "ec-1"})
        self.stranger = JsonWebKey.generate_key("RSA", 2048, is_private=True,
                                                options={"kid": "rsa-1"})
        self.path = tmp_path / "jwks.json"
        self.path.write_text(json.dumps({"keys": [self.rsa.as_dict(is_private=False),
                                                  self.ec.as_dict(is_private=False)]}))

    def token(self, sub="alice", lifetime=300, aud="floe", key=None, alg="RS256"):
        key = key or (self.ec if alg == "ES256" else self.rsa)
        now = int(time.time())
        claims = {"sub": sub, "iss": ISSUER, "aud": aud, "iat": now, "exp": now + lifetime}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jwt.encode({"alg": alg, "kid": key.as_dict()["kid"]}, claims, key).decode()


def oauth_conf(floe, token_fn):
    return {"bootstrap.servers": floe.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: (token_fn(), time.time() + 300)}


def start(floe_factory, keys, *extra):
    return floe_factory(*SASL, "--oauth-jwks", str(keys.path), "--oauth-issuer", ISSUER,
                        "--oauth-audience", "floe", *extra)


def test_oauthbearer_with_librdkafka_and_kafka_python(floe_factory, tmp_path):
    keys = Keys(tmp_path)
    floe = start(floe_factory, keys)
    conf = oauth_conf(floe, lambda: keys.token())
    p = Producer(conf)
    for i in range(5):
        p.produce("tokens", f"v{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    c.subscribe(["tokens"])
    got, deadline = [], time.time() + 30
    while len(got) < 5 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert got == [f"v{i}".encode() for i in range(5)]
    assert floe.log_contains('principal="alice"')

    # Refused: expired, signed by a key not in the JWKS, for another
    # audience; each an authentication error.
    for bad in (lambda: keys.token(lifetime=-120), lambda: keys.token(key=keys.stranger),
                lambda: keys.token(aud="elsewhere")):
        e = librdkafka_login_error(oauth_conf(floe, bad))
        assert e is not None and e.code() == KafkaError._AUTHENTICATION, e

    # kafka-python, with an ES256 token.
    class Provider(AbstractTokenProvider):
        def token(self):
            return keys.token(sub="bob", alg="ES256")

    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider())
    kp.send("tokens", b"from kafka-python").get(timeout=30)
    kp.close()
    assert floe.log_contains('principal="bob"')

    # SCRAM and PLAIN stay offered beside it.
    add_user(floe, "carol", "carol-secret")
    p = Producer(sasl_conf(floe, "SCRAM-SHA-512", "carol", "carol-secret"))
    p.produce("tokens", b"scram")
    assert p.flush(30) == 0


def authenticate(s, token, correlation):
    """SaslHandshake v1 + SaslAuthenticate v1 with OAUTHBEARER: (error
    code, session lifetime ms)."""
    _request(s, 17, 1, struct.pack(">h", 11) + b"OAUTHBEARER", correlation=correlation)
    r = _read_frame(s)
    assert struct.unpack(">h", r[4:6])[0] == 0, r
    message = b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"
    _request(s, 36, 1, struct.pack(">i", len(message)) + message, correlation=correlation + 1)
    r = _read_frame(s)[4:]
    (error,) = struct.unpack(">h", r[:2])
    (mlen,) = struct.unpack(">h", r[2:4])
    rest = r[4 + max(mlen, 0):]
    (blen,) = struct.unpack(">i", rest[:4])
    (lifetime,) = struct.unpack(">q", rest[4 + blen:12 + blen])
    return error, lifetime


def metadata_answered(s, correlation):
    _request(s, 3, 1, struct.pack(">i", 0), correlation=correlation)
    try:
        return struct.unpack(">i", _read_frame(s)[:4])[0] == correlation
    except (ConnectionError, struct.error, AssertionError, OSError):
        return False


def test_a_login_lasts_its_lifetime_unless_renewed_as_the_same_principal(floe_factory, tmp_path):
    keys = Keys(tmp_path)
    floe = start(floe_factory, keys, "--connections-max-reauth-ms", "2500")
    host, port = floe.bootstrap.rsplit(":", 1)

    # The lifetime is the shorter of the token's and the broker's bound.
    with socket.create_connection((host, int(port)), timeout=5) as s:
        error, lifetime = authenticate(s, keys.token(lifetime=3600), 1)
        assert error == 0 and 2000 < lifetime <= 2500, lifetime
        assert metadata_answered(s, 3)
        time.sleep(lifetime / 1000 + 0.3)
        # Not renewed: the next request closes the connection.
        assert not metadata_answered(s, 4)

    with socket.create_connection((host, int(port)), timeout=5) as s:
        assert authenticate(s, keys.token(), 1)[0] == 0
        time.sleep(1.5)
        # Renewed before the end, as the same principal: served on.
        assert authenticate(s, keys.token(), 3) == (0, pytest.approx(2500, abs=100))
        time.sleep(1.5)
        assert metadata_answered(s, 5)
        # Renewing as someone else is refused, and the connection closed.
        error, _ = authenticate(s, keys.token(sub="mallory"), 6)
        assert error == 58  # SASL_AUTHENTICATION_FAILED
        assert not metadata_answered(s, 8)

    # librdkafka renews on its own (KIP-368): a producer that runs past
    # several lifetimes keeps delivering, over one login after another.
    add_user(floe, "alice", "alice-secret")
    p = Producer({**sasl_conf(floe, "SCRAM-SHA-512", "alice", "alice-secret"),
                  "message.timeout.ms": 10_000})
    errors = []
    before = floe.log_text().count('principal="alice"')
    deadline = time.time() + 7
    n = 0
    while time.time() < deadline:
        p.produce("renewed", f"{n}".encode(),
                  on_delivery=lambda err, _m: err and errors.append(err))
        p.poll(0.1)
        n += 1
    assert p.flush(30) == 0
    assert errors == [], errors
    # Two connections (bootstrap, broker), each logged in and renewed at
    # least once in 7 s of 2.5 s lifetimes.
    logins = floe.log_text().count('principal="alice"') - before
    assert logins >= 4, logins


def test_pyiceberg_authenticates_to_the_catalog_with_oauth2_client_credentials(floe_factory, tmp_path):
    """The HTTP API with --http-authentication required: PyIceberg gets a
    token at the catalog's /v1/oauth/tokens with credential=user:secret
    and reads a table with it; an identity provider's JWT is taken as a
    bearer token too; without credentials, or with wrong ones, nothing."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import OAuthError, UnauthorizedError

    from helpers import create_topic
    from test_schemas import http

    keys = Keys(tmp_path)
    floe = floe_factory("--http-authentication", "required", "--initial-user", "admin:admin-secret",
                        "--oauth-jwks", str(keys.path), "--oauth-issuer", ISSUER,
                        "--oauth-audience", "floe")
    create_topic(floe.bootstrap, "lake", partitions=1,
                 config={"floe.iceberg.commit.interval.ms": "300"})
    p = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(10):
        p.produce("lake", f"row-{i}".encode())
    assert p.flush(30) == 0

    uri = floe.http + "/iceberg"
    cat = RestCatalog("floe", uri=uri, credential="admin:admin-secret")
    deadline = time.time() + 30
    while ("floe", "lake") not in cat.list_tables("floe"):
        assert time.time() < deadline, "the table was not committed"
        time.sleep(0.2)
    rows = 0
    while rows < 10 and time.time() < deadline:
        rows = cat.load_table("floe.lake").scan().to_arrow().num_rows
        time.sleep(0.2)
    assert rows == 10

    with pytest.raises(UnauthorizedError):
        RestCatalog("floe", uri=uri).list_namespaces()
    with pytest.raises(OAuthError):
        RestCatalog("floe", uri=uri, credential="admin:wrong")
    # The token endpoint speaks OAuth2's errors.
    status, body = http(floe, "POST", "/iceberg/v1/oauth/tokens")
    assert status in (400, 415, 422), body

    # A bearer JWT from the identity provider, on any route.
    def bearer(token):
        import urllib.request
        req = urllib.request.Request(floe.http + "/iceberg/v1/namespaces",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert bearer(keys.token(sub="admin")) == 200
    assert bearer(keys.token(sub="admin", lifetime=-120)) == 401
    assert bearer(keys.token(sub="admin", key=keys.stranger)) == 401
    assert http(floe, "GET", "/health")[0] == 200


class JwksServer:
    """An HTTP server (Python's http.server) serving a JWKS document, as an
    identity provider's jwks_uri does; counts the fetches."""

    def __init__(self, document):
        import http.server
        import threading

        self.document = document
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_keys_from_a_jwks_url_and_a_key_rotated_in(floe_factory, tmp_path):
    """--oauth-jwks https://idp/jwks: fetched at startup; a token signed by a
    key added later is taken once the URL has been fetched again (a token
    naming an unknown key id asks for that, at most every 10 s)."""
    from test_sasl import roundtrip_librdkafka

    keys = Keys(tmp_path)
    server = JwksServer({"keys": [keys.rsa.as_dict(is_private=False)]})
    try:
        floe = floe_factory(*SASL, "--oauth-jwks", server.url, "--oauth-issuer", ISSUER,
                            "--oauth-audience", "floe")
        assert server.fetches == 1
        assert len(roundtrip_librdkafka(oauth_conf(floe, lambda: keys.token()), "jwks", n=5)) == 5
        # The EC key is published now; floe has not fetched it yet.
        server.document = {"keys": [keys.rsa.as_dict(is_private=False), keys.ec.as_dict(is_private=False)]}
        rotated = oauth_conf(floe, lambda: keys.token(alg="ES256"))

        def login_error(conf, wait=6):
            errors = []
            p = Producer({**conf, "error_cb": errors.append})
            until = time.time() + wait
            while not errors and time.time() < until:
                p.poll(0.2)
            return errors[0] if errors else None

        deadline = time.time() + 40
        while (e := login_error(rotated)) is not None:
            assert time.time() < deadline, f"the rotated key was never fetched: {e}"
            time.sleep(1)
        assert len(roundtrip_librdkafka(rotated, "jwks", n=5)) >= 5
        assert server.fetches >= 2
        assert floe.log_contains("JWKS fetched again")
        # A key nobody publishes stays untrusted.
        e = librdkafka_login_error(oauth_conf(floe, lambda: keys.token(key=keys.stranger)))
        assert e is not None and e.code() == KafkaError._AUTHENTICATION, e
    finally:
        server.close()


def test_an_unreachable_jwks_url_stops_the_start(tmp_path):
    from conftest import floe_refuses_to_start

    said = floe_refuses_to_start(tmp_path / "d", *SASL, "--oauth-jwks", "http://127.0.0.1:9/jwks.json")
    assert "--oauth-jwks http://127.0.0.1:9/jwks.json" in said, said
