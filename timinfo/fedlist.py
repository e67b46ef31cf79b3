"""The federation list payload and its lookup index.

The payload schema has drifted in the wild: gematik's published list uses ``iks`` where the schema
says ``ik``, ``timAnbieter`` may be null or absent, insurer domains may list no IK, and domains may
repeat. The index accepts all of that, logs what violates the VZD rules, and gives O(1) lookups.
An `Index` is immutable once built; the service swaps the reference atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from timinfo.errors import ListRejected
from timinfo.ik import is_ik_format, is_insurer_ik

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexStats:
    entries: int = 0
    insurers: int = 0
    iks: int = 0
    duplicate_domains: int = 0
    invalid_iks: int = 0
    skipped_entries: int = 0


@dataclass(frozen=True)
class Index:
    version: int
    by_ik: MappingProxyType[str, str]
    #: domain -> isInsurance, for every domain on the list.
    by_domain: MappingProxyType[str, bool]
    stats: IndexStats = field(default_factory=IndexStats)

    def find_by_ik(self, ik: str) -> str | None:
        return self.by_ik.get(ik)

    def is_insurance(self, server_name: str) -> bool | None:
        """True/False for listed domains, None for unknown ones."""
        return self.by_domain.get(server_name)


def _iks(entry: dict[str, Any], domain: str) -> list[str]:
    values: list[str] = []
    for key in ("ik", "iks"):
        raw = entry.get(key)
        if raw is None:
            continue
        if not isinstance(raw, list):
            raw = [raw]
        for v in raw:
            if isinstance(v, int) and not isinstance(v, bool):
                v = f"{v:09d}"
            if isinstance(v, str):
                values.append(v.strip())
            else:
                log.warning("federation list: domain %s has a non-string IK entry; ignored", domain)
    return values


def build_index(payload: bytes) -> Index:
    """Parse the (already signature-checked) payload into an `Index`; raise `ListRejected` if unusable."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ListRejected("bad_payload", f"payload is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ListRejected("bad_payload", "payload is not a JSON object")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ListRejected("bad_payload", "payload 'version' must be a non-negative integer")
    entries = doc.get("domainList")
    if not isinstance(entries, list):
        raise ListRejected("bad_payload", "payload 'domainList' must be a list")

    by_ik: dict[str, str] = {}
    by_domain: dict[str, bool] = {}
    dup_domains = invalid_iks = skipped = 0
    for entry in entries:
        domain = entry.get("domain") if isinstance(entry, dict) else None
        if not isinstance(domain, str) or not domain:
            skipped += 1
            continue
        domain = domain.strip().lower()
        insurance = entry.get("isInsurance")
        if not isinstance(insurance, bool):
            log.warning("federation list: domain %s has no boolean isInsurance; treated as false", domain)
            insurance = False
        if domain in by_domain:
            dup_domains += 1
            insurance = insurance or by_domain[domain]
        by_domain[domain] = insurance
        for ik in _iks(entry, domain):
            if not is_insurer_ik(ik):
                invalid_iks += 1
                log.warning("federation list v%d: domain %s lists IK %r that fails the GR-IK check digit or "
                            "insurer prefix rule", version, domain, ik)
            if not is_ik_format(ik):
                continue
            other = by_ik.get(ik)
            if other is not None and other != domain:
                log.warning("federation list v%d: IK %s is listed by %s and %s; using %s",
                            version, ik, other, domain, other)
                continue
            by_ik[ik] = domain
    if skipped:
        log.warning("federation list v%d: skipped %d entries without a domain", version, skipped)
    stats = IndexStats(entries=len(by_domain), insurers=sum(by_domain.values()), iks=len(by_ik),
                       duplicate_domains=dup_domains, invalid_iks=invalid_iks, skipped_entries=skipped)
    return Index(version, MappingProxyType(by_ik), MappingProxyType(by_domain), stats)
