"""The ``tim_information`` config section, parsed into frozen value objects.

The section object is duck-typed (the application passes its path-aware reader); only the small
`SectionLike` protocol below is relied on, so this package never imports the gateway's internals.
Paths may be given as ``bundled:NAME`` to refer to files shipped in ``timinfo/data`` (the RU test
federation list and its TEST-ONLY trust chain), which keeps the sample config self-contained while
making the use of test material explicit in the config text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_PREFIX = "bundled:"

#: C.FD.SIG (oid_fd_sig): the certificate type of the VZD list signer.
DEFAULT_POLICY_OIDS = ("1.2.276.0.76.4.203",)
#: oid_vzd_ti ("Verzeichnisdienst-TI"), carried in the signer's Admission extension.
DEFAULT_ROLE_OIDS = ("1.2.276.0.76.4.171",)

#: Upper bound for caching a good OpenID token: a token's life is typically one hour and a
#: revoked/deactivated user must not keep access for longer than this.
MAX_TOKEN_CACHE_TTL_S = 300.0


class SectionLike(Protocol):
    path: str

    def str(self, key: str, default: Any = ..., **kw: Any) -> Any: ...
    def bool(self, key: str, default: Any = ...) -> Any: ...
    def int(self, key: str, default: Any = ..., **kw: Any) -> Any: ...
    def number(self, key: str, default: Any = ..., **kw: Any) -> Any: ...
    def str_list(self, key: str, default: Any = ..., **kw: Any) -> Any: ...
    def section(self, key: str, *, required: bool = False) -> SectionLike: ...
    def secret(self, key: str, default: Any = ...) -> Any: ...
    def has(self, key: str) -> bool: ...
    def error(self, key: str, message: str) -> Exception: ...
    def finish(self, *, known: tuple[str, ...] = ()) -> None: ...


@dataclass(frozen=True)
class InfoConfig:
    title: str = "TI-Messenger Information API"
    description: str | None = None
    contact: str | None = None
    #: The interface version reported by ``GET /``; the only published one is 1.0.0.
    version: str = "1.0.0"


@dataclass(frozen=True)
class TrustConfig:
    #: PEM files whose certificates are trust anchors (roots or pinned CAs).
    anchors: tuple[str, ...] = ()
    #: TSL ``roots.json`` files; every ``cert`` is an anchor, ``next``/``prev`` cross certs are intermediates.
    tsl_roots: tuple[str, ...] = ()
    #: PEM files with intermediate CA certificates (the signer's x5c carries only the signer itself).
    intermediates: tuple[str, ...] = ()
    policy_oids: tuple[str, ...] = DEFAULT_POLICY_OIDS
    role_oids: tuple[str, ...] = DEFAULT_ROLE_OIDS
    #: Accepted JWS ``alg`` values. Only BP256R1 unless ES256 is deliberately requested from the VZD.
    algorithms: tuple[str, ...] = ("BP256R1",)
    #: Tolerance for clock differences when checking certificate validity.
    clock_skew_s: float = 300.0


@dataclass(frozen=True)
class OcspConfig:
    enabled: bool = False
    #: Overrides the signer certificate's AIA OCSP URL (the TI test responders are TI-internal).
    responder_url: str | None = None
    timeout_s: float = 5.0
    #: When the responder cannot be asked: False rejects the list (fail closed), True accepts it.
    allow_unreachable: bool = False
    #: Maximum age of an OCSP response without nextUpdate.
    max_age_s: float = 86400.0


@dataclass(frozen=True)
class VzdConfig:
    token_url: str
    auth_url: str
    list_url: str
    client_id: str
    client_secret: str = field(repr=False)
    #: How the client authenticates at the token endpoint: HTTP Basic (VZD HOWTO) or form body.
    client_auth: str = "basic"
    timeout_s: float = 10.0
    sig_alg: str | None = None
    max_list_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class FederationListConfig:
    source: str = "file"
    #: The list file for ``source: file``.
    path: str | None = None
    #: Directory where the last verified list is persisted and loaded from at start.
    state_dir: str | None = None
    refresh_interval_s: float = 3600.0
    #: Each refresh is scheduled at interval * (1 ± jitter).
    refresh_jitter: float = 0.1
    #: How often a failed refresh is retried before the regular interval applies again.
    retry_interval_s: float = 300.0
    #: A lookup miss triggers a refresh at most this often.
    on_demand_min_interval_s: float = 60.0
    #: ``source: file`` polls the file's mtime/size this often.
    file_poll_interval_s: float = 5.0
    trust: TrustConfig = field(default_factory=TrustConfig)
    ocsp: OcspConfig = field(default_factory=OcspConfig)
    vzd: VzdConfig | None = None


@dataclass(frozen=True)
class TimInfoConfig:
    enabled: bool = False
    path_prefix: str = "/tim-information"
    info: InfoConfig = field(default_factory=InfoConfig)
    homeserver_urls: tuple[str, ...] = ()
    #: If non-empty, the server part of the token's ``sub`` must be one of these.
    allowed_server_names: tuple[str, ...] = ()
    token_cache_ttl_s: float = MAX_TOKEN_CACHE_TTL_S
    negative_cache_ttl_s: float = 10.0
    userinfo_timeout_s: float = 5.0
    token_cache_max_entries: int = 100_000
    #: Distinct tokens checked at the homeserver at once; beyond this, new tokens get 503 (flood guard).
    max_concurrent_checks: int = 64
    federation_list: FederationListConfig = field(default_factory=FederationListConfig)


def resolve_path(value: str) -> str:
    if value.startswith(BUNDLED_PREFIX):
        return str(DATA_DIR / value[len(BUNDLED_PREFIX):])
    return value


def _file(s: SectionLike, key: str, value: str) -> str:
    path = resolve_path(value)
    if not os.path.isfile(path):
        raise s.error(key, f"file not found: {path}")
    return path


def _files(s: SectionLike, key: str) -> tuple[str, ...]:
    return tuple(_file(s, key, v) for v in s.str_list(key, ()))


def _url(s: SectionLike, key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise s.error(key, f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _oids(s: SectionLike, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = s.str_list(key, default)
    for v in values:
        parts = v.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts):
            raise s.error(key, f"not a dotted OID: {v!r}")
    return tuple(values)


def _info(s: SectionLike) -> InfoConfig:
    d = InfoConfig()
    cfg = InfoConfig(title=s.str("title", d.title), description=s.str("description", None),
                     contact=s.str("contact", None), version=s.str("version", d.version))
    s.finish()
    return cfg


def _trust(s: SectionLike) -> TrustConfig:
    d = TrustConfig()
    cfg = TrustConfig(
        anchors=_files(s, "anchors"),
        tsl_roots=_files(s, "tsl_roots"),
        intermediates=_files(s, "intermediates"),
        policy_oids=_oids(s, "policy_oids", d.policy_oids),
        role_oids=_oids(s, "role_oids", d.role_oids),
        algorithms=tuple(s.str_list("algorithms", d.algorithms)),
        clock_skew_s=s.number("clock_skew_s", d.clock_skew_s, min=0, max=86400),
    )
    for alg in cfg.algorithms:
        if alg not in ("BP256R1", "ES256"):
            raise s.error("algorithms", f"unsupported algorithm {alg!r} (BP256R1, ES256)")
    if not cfg.anchors and not cfg.tsl_roots:
        raise s.error("anchors", "at least one trust anchor is required (anchors and/or tsl_roots)")
    s.finish()
    return cfg


def _ocsp(s: SectionLike) -> OcspConfig:
    d = OcspConfig()
    url = s.str("responder_url", None)
    cfg = OcspConfig(
        enabled=s.bool("enabled", d.enabled),
        responder_url=_url(s, "responder_url", url) if url else None,
        timeout_s=s.number("timeout_s", d.timeout_s, min=0.1, max=120),
        allow_unreachable=s.bool("allow_unreachable", d.allow_unreachable),
        max_age_s=s.number("max_age_s", d.max_age_s, min=60, max=30 * 86400),
    )
    s.finish()
    return cfg


def _vzd(s: SectionLike) -> VzdConfig:
    base = s.str("base_url", None)
    base = _url(s, "base_url", base) if base else None

    def endpoint(key: str, suffix: str) -> str:
        value = s.str(key, None)
        if value:
            return _url(s, key, value)
        if base is None:
            raise s.error(key, "is required unless base_url is given")
        return base + suffix

    cfg = VzdConfig(
        token_url=_url(s, "token_url", s.str("token_url")),
        auth_url=endpoint("auth_url", "/ti-provider-authenticate"),
        list_url=endpoint("list_url", "/tim-provider-services/FederationList/federationList.jws"),
        client_id=s.str("client_id"),
        client_secret=s.secret("client_secret"),
        client_auth=s.str("client_auth", VzdConfig.client_auth, choices=("basic", "body")),
        timeout_s=s.number("timeout_s", VzdConfig.timeout_s, min=0.1, max=300),
        sig_alg=s.str("sig_alg", VzdConfig.sig_alg, choices=("BP256R1", "ES256")),
        max_list_bytes=s.int("max_list_bytes", VzdConfig.max_list_bytes, min=1024),
    )
    s.finish()
    return cfg


def _federation_list(s: SectionLike) -> FederationListConfig:
    d = FederationListConfig()
    source = s.str("source", d.source, choices=("file", "vzd"))
    path = s.str("path", None)
    if source == "file":
        if path is None:
            raise s.error("path", "is required for source: file")
        path = _file(s, "path", path)
    elif path is not None:
        raise s.error("path", "only used with source: file")
    state_dir = s.str("state_dir", None)
    if not s.has("trust"):
        raise s.error("trust", "is required: the list is only used after its signer chains to a trust anchor")
    cfg = FederationListConfig(
        source=source,
        path=path,
        state_dir=resolve_path(state_dir) if state_dir else None,
        refresh_interval_s=s.number("refresh_interval_s", d.refresh_interval_s, min=1, max=7 * 86400),
        refresh_jitter=s.number("refresh_jitter", d.refresh_jitter, min=0, max=0.5),
        retry_interval_s=s.number("retry_interval_s", d.retry_interval_s, min=0.1, max=86400),
        on_demand_min_interval_s=s.number("on_demand_min_interval_s", d.on_demand_min_interval_s, min=0,
                                          max=86400),
        file_poll_interval_s=s.number("file_poll_interval_s", d.file_poll_interval_s, min=0.1, max=3600),
        trust=_trust(s.section("trust", required=True)),
        ocsp=_ocsp(s.section("ocsp")),
        vzd=_vzd(s.section("vzd", required=True)) if source == "vzd" else None,
    )
    if source == "vzd" and cfg.state_dir is None:
        raise s.error("state_dir", "is required for source: vzd (a restart must survive a VZD outage)")
    if source != "vzd" and s.has("vzd"):
        raise s.error("vzd", "only used with source: vzd")
    s.finish()
    return cfg


def parse_config(section: SectionLike) -> TimInfoConfig:
    d = TimInfoConfig()
    enabled = section.bool("enabled", True)
    prefix = section.str("path_prefix", d.path_prefix)
    if not prefix.startswith("/") or prefix.endswith("/") or "?" in prefix or "#" in prefix:
        raise section.error("path_prefix", f"must start with '/' and not end with '/', got {prefix!r}")
    urls = section.str_list("homeserver_url", ())
    if enabled and not urls:
        raise section.error("homeserver_url", "is required: tokens are checked at the homeserver's userinfo endpoint")
    ttl = section.number("token_cache_ttl_s", d.token_cache_ttl_s, min=0, max=86400)
    cfg = TimInfoConfig(
        enabled=enabled,
        path_prefix=prefix,
        info=_info(section.section("info")),
        homeserver_urls=tuple(_url(section, "homeserver_url", u) for u in urls),
        allowed_server_names=tuple(n.lower() for n in section.str_list("allowed_server_names", ())),
        token_cache_ttl_s=min(ttl, MAX_TOKEN_CACHE_TTL_S),
        negative_cache_ttl_s=section.number("negative_cache_ttl_s", d.negative_cache_ttl_s, min=0, max=300),
        userinfo_timeout_s=section.number("userinfo_timeout_s", d.userinfo_timeout_s, min=0.1, max=120),
        token_cache_max_entries=section.int("token_cache_max_entries", d.token_cache_max_entries, min=1),
        max_concurrent_checks=section.int("max_concurrent_checks", d.max_concurrent_checks, min=1, max=10_000),
        federation_list=_federation_list(section.section("federation_list", required=True))
        if enabled or section.has("federation_list") else FederationListConfig(),
    )
    section.finish()
    return cfg
