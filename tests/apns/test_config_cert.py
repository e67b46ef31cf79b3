"""Config reading (errors name the key) and certificate auth end to end (.p12 + password file, PEM)."""

from __future__ import annotations

import base64
import datetime
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.config.reader import ConfigError, Section
from gateway.pushkins.apns import ApnsOptions, parse_options
from tests.apns.conftest import KEY_ID, TEAM_ID, TOPIC
from tests.fakes.apns import FakeAPNs
from tests.support.gateway import GatewayProcess


def client_cert(ca, uid: str | None = TOPIC):
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, "Apple Push Services: " + TOPIC)]
    if uid:
        attrs.append(x509.NameAttribute(x509.NameOID.USER_ID, uid))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=20))
            .sign(ca.key, hashes.SHA256()))
    return key, cert


def options(pki, **kw) -> ApnsOptions:
    _ca, _d, p8, _ = pki
    base = {"keyfile": str(p8), "key_id": KEY_ID, "team_id": TEAM_ID, "topic": TOPIC}
    base.update(kw)
    s = Section({k: v for k, v in base.items() if v is not None}, "apps.x")
    opts = parse_options(s)
    s.finish()
    return opts


def test_defaults(pki):
    o = options(pki)
    assert (o.host, o.port, o.max_tries, o.ttl_s, o.max_connections) == ("api.push.apple.com", 443, 3, 86400, 10)
    assert o.convert_device_token_to_hex and o.send_badge_counts and o.collapse_id is None and o.push_type is None
    assert o.key.startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE" not in repr(o)
    assert options(pki, platform="sandbox").host == "api.development.push.apple.com"
    assert (options(pki, apns_url="https://relay.example:8443").host, options(
        pki, apns_url="https://relay.example:8443").port) == ("relay.example", 8443)


@pytest.mark.parametrize("kw,path,msg", [
    ({"key_id": None}, "apps.x.key_id", "is required"),
    ({"topic": None}, "apps.x.topic", "is required"),
    ({"keyfile": None}, "apps.x", "keyfile"),
    ({"keyfile": "/nonexistent.p8"}, "apps.x.keyfile", "file not found"),
    ({"platform": "staging"}, "apps.x.platform", "must be one of"),
    ({"push_type": "alarm"}, "apps.x.push_type", "must be one of"),
    ({"apns_url": "http://localhost:1"}, "apps.x.apns_url", "https://host"),
    ({"apns_url": "https://localhost:99999"}, "apps.x.apns_url", "invalid port"),
    ({"max_tries": 0}, "apps.x.max_tries", ">= 1"),
    ({"collapse_id": "sender"}, "apps.x.collapse_id", "must be one of"),
])
def test_config_errors(pki, kw, path, msg):
    with pytest.raises(ConfigError) as e:
        options(pki, **kw)
    assert e.value.path == path and msg in str(e.value)


def test_keyfile_must_be_a_p256_key(pki, tmp_path):
    bad = tmp_path / "bad.p8"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="apps.x.keyfile: not an unencrypted PEM"):
        options(pki, keyfile=str(bad))


def test_unknown_key_is_rejected(pki):
    _ca, _d, p8, _ = pki
    s = Section({"keyfile": str(p8), "key_id": KEY_ID, "team_id": TEAM_ID, "topic": TOPIC, "topik": "x"}, "apps.x")
    parse_options(s)
    with pytest.raises(ConfigError, match="did you mean 'topic'"):
        s.finish()


def test_p12_wrong_password(pki, tmp_path):
    ca = pki[0]
    key, cert = client_cert(ca)
    p12 = tmp_path / "c.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"x", key, cert, None,
                                                          serialization.BestAvailableEncryption(b"right")))
    with pytest.raises(ConfigError, match="apps.x.certfile: cannot open PKCS#12"):
        options(pki, keyfile=None, certfile=str(p12), certfile_password="wrong")


@pytest.mark.parametrize("form", ["p12", "pem"])
def test_certificate_auth_end_to_end(pki, tmp_path, form):
    ca, d, _p8, _pub = pki
    key, cert = client_cert(ca)
    if form == "p12":
        path = tmp_path / "apns.p12"
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            b"apns", key, cert, None, serialization.BestAvailableEncryption(b"s3cret")))
        (tmp_path / "pw").write_text("s3cret\n")
        creds = {"certfile": str(path), "certfile_password_file": str(tmp_path / "pw")}
    else:
        path = tmp_path / "apns.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        creds = {"certfile": str(path)}
    with FakeAPNs(ca, d, topic=TOPIC, client_ca=ca) as fake:
        app = {"type": "apns", "apns_url": fake.url, "ca_file": str(ca.cert_path), **creds}
        gw = GatewayProcess(tmp_path, {"apps": {"org.example.cert": app}}).start()
        try:
            raw = uuid.uuid4().bytes * 2
            r = gw.notify({"event_id": "$e", "room_id": "!r:hs", "type": "m.room.message",
                           "devices": [{"app_id": "org.example.cert", "pushkey": base64.b64encode(raw).decode()}]})
        finally:
            gw.stop()
        assert r.json() == {"rejected": []}
        [got] = fake.requests
        assert got.token == raw.hex() and got.headers["apns-topic"] == TOPIC  # topic from the certificate UID
        assert "authorization" not in got.headers and f"UID={TOPIC}" in got.client_cert_subject
        assert "expires in" in gw.log()  # under 30 days left: warned at start-up
