"""``tim-push-gateway federation-list verify FILE [--trust ...]``: check a list offline, as the service would."""

from __future__ import annotations

import argparse
import datetime
import logging
import sys

from timinfo.config import TrustConfig, resolve_path
from timinfo.errors import ListRejected
from timinfo.pki import TrustError, load_trust
from timinfo.verify import verify_list


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tim-push-gateway federation-list verify",
                                description="Verify a VZD federation list (JWS signature, signer chain, policy).")
    p.add_argument("file", help="the federationList.jws file")
    p.add_argument("--trust", action="append", default=[], metavar="PEM",
                   help="trust anchor PEM file (repeatable); 'bundled:NAME' for shipped files")
    p.add_argument("--tsl-roots", action="append", default=[], metavar="JSON", help="TSL roots.json (repeatable)")
    p.add_argument("--intermediate", action="append", default=[], metavar="PEM",
                   help="intermediate CA PEM file (repeatable)")
    p.add_argument("--policy-oid", action="append", default=None, help="required certificate policy OID")
    p.add_argument("--role-oid", action="append", default=None, help="accepted Admission role OID")
    p.add_argument("--alg", action="append", default=None, choices=("BP256R1", "ES256"))
    p.add_argument("--at", default=None, metavar="ISO-TIME",
                   help="check certificate validity at this time instead of now (e.g. 2027-06-01T00:00:00Z)")
    return p


def verify_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    if not args.trust and not args.tsl_roots:
        print("error: give at least one --trust PEM or --tsl-roots JSON", file=sys.stderr)
        return 2
    d = TrustConfig()
    cfg = TrustConfig(
        anchors=tuple(resolve_path(p) for p in args.trust),
        tsl_roots=tuple(resolve_path(p) for p in args.tsl_roots),
        intermediates=tuple(resolve_path(p) for p in args.intermediate),
        policy_oids=tuple(args.policy_oid) if args.policy_oid is not None else d.policy_oids,
        role_oids=tuple(args.role_oid) if args.role_oid is not None else d.role_oids,
        algorithms=tuple(args.alg) if args.alg else d.algorithms,
    )
    at = None
    if args.at:
        try:
            at = datetime.datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            print(f"error: --at: not an ISO time: {args.at!r}", file=sys.stderr)
            return 2
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.timezone.utc)
    try:
        with open(resolve_path(args.file), "rb") as fh:
            raw = fh.read()
        store = load_trust(cfg)
    except (OSError, TrustError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        vl = verify_list(raw, store, cfg, at)
    except ListRejected as e:
        print(f"file: {args.file}")
        print(f"result: REJECTED ({e.reason})")
        print(f"reason: {e.message}")
        return 1
    s = vl.index.stats
    signer = vl.chain.signer
    print(f"file: {args.file}")
    print(f"version: {vl.version}")
    print(f"entries: {s.entries}")
    print(f"insurers: {s.insurers}")
    print(f"iks: {s.iks} (failing check digit/prefix rule: {s.invalid_iks})")
    print(f"duplicate domains: {s.duplicate_domains}")
    print(f"signer: {signer.subject.rfc4514_string()}")
    print(f"signer valid: {signer.not_valid_before_utc:%Y-%m-%d} .. {signer.not_valid_after_utc:%Y-%m-%d}")
    print(f"chain: {vl.chain.describe()}")
    print("result: OK (signature valid, chain to trust anchor valid, policy/role OIDs present)")
    return 0


if __name__ == "__main__":
    raise SystemExit(verify_main(sys.argv[1:]))
