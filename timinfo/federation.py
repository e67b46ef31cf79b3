"""Keeps the current verified federation list fresh: load at start, refresh periodically and on demand.

A candidate list replaces the current one only after full verification and only if its version is
higher; anything else is counted by reason and the current list stays. Verification and indexing run
in the reactor's thread pool so a 100 000-entry list never stalls request handling. The accepted raw
JWS is persisted (when a state directory is configured) and re-verified at the next start.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from twisted.internet import defer, threads

from timinfo import metrics, ocsp
from timinfo.config import FederationListConfig
from timinfo.errors import ListRejected
from timinfo.fedlist import Index
from timinfo.pki import TrustStore
from timinfo.store import file_signature, read_file, save_atomic, state_path
from timinfo.verify import VerifiedList, verify_list
from timinfo.vzd import VzdClient

log = logging.getLogger(__name__)


class FederationListManager:
    def __init__(self, cfg: FederationListConfig, reactor: Any, client: Any, trust: TrustStore) -> None:
        self._cfg = cfg
        self._reactor = reactor
        self._client = client
        self._trust = trust
        self._vzd = VzdClient(cfg.vzd, reactor, client) if cfg.vzd else None
        self.current: VerifiedList | None = None
        #: The index the request path reads; replaced by a single reference assignment.
        self.index: Index | None = None
        self._confirmed_at: float | None = None
        self._file_sig: tuple[int, int, int] | None = None
        self._inflight: defer.Deferred[str] | None = None
        self._timer: Any = None
        self._last_on_demand = float("-inf")
        self._stopped = False
        self._outcomes = {r: metrics.REFRESH.labels(outcome=r) for r in metrics.REASONS}
        metrics.LIST_AGE.set_function(self.age)

    # -- state -----------------------------------------------------------------------------------

    def age(self) -> float:
        if self._confirmed_at is None:
            return -1.0
        return max(0.0, self._reactor.seconds() - self._confirmed_at)

    def _confirm(self) -> None:
        self._confirmed_at = self._reactor.seconds()
        metrics.LIST_LAST_SUCCESS.set(self._confirmed_at)

    def _install(self, vl: VerifiedList, origin: str) -> None:
        self.current = vl
        self.index = vl.index
        self._confirm()
        s = vl.index.stats
        metrics.LIST_VERSION.set(vl.version)
        metrics.LIST_ENTRIES.set(s.entries)
        metrics.LIST_INSURERS.set(s.insurers)
        metrics.LIST_IKS.set(s.iks)
        metrics.LIST_INVALID_IKS.set(s.invalid_iks)
        log.info("federation list v%d in use (from %s): %d domains, %d insurers, %d IKs; signer %s",
                 vl.version, origin, s.entries, s.insurers, s.iks, vl.chain.signer.subject.rfc4514_string())
        if self._cfg.state_dir and origin != "persisted":
            try:
                save_atomic(state_path(self._cfg.state_dir), vl.raw)
            except OSError as e:
                log.error("cannot persist federation list to %s: %s", self._cfg.state_dir, e)

    def _count(self, outcome: str) -> None:
        self._outcomes[outcome].inc()

    # -- verification ----------------------------------------------------------------------------

    async def _verify(self, raw: bytes) -> VerifiedList:
        vl: VerifiedList = await threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), verify_list, raw, self._trust, self._cfg.trust)
        if self._cfg.ocsp.enabled:
            await ocsp.check(vl.chain, self._cfg.ocsp, self._reactor, self._client, self._cfg.trust.clock_skew_s)
        return vl

    async def _offer(self, raw: bytes, origin: str) -> str:
        """Verify `raw` and install it if newer; return the outcome label."""
        try:
            vl = await self._verify(raw)
        except ListRejected as e:
            log.warning("federation list from %s rejected (%s); keeping the current list", origin, e)
            return e.reason
        if self.current is not None and vl.version < self.current.version:
            log.warning("federation list from %s has version %d, older than v%d in use; rejected",
                        origin, vl.version, self.current.version)
            return "older_version"
        if self.current is not None and vl.version == self.current.version:
            self._confirm()
            return "unchanged"
        self._install(vl, origin)
        return "updated"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        candidates: list[tuple[str, bytes]] = []
        if self._cfg.state_dir:
            raw = read_file(state_path(self._cfg.state_dir))
            if raw is not None:
                candidates.append(("persisted", raw))
        if self._cfg.source == "file" and self._cfg.path:
            self._file_sig = file_signature(self._cfg.path)
            raw = read_file(self._cfg.path)
            if raw is not None:
                candidates.append((self._cfg.path, raw))
        for origin, raw in candidates:
            self._count(await self._offer(raw, origin))
        if self.current is None:
            log.warning("no verified federation list yet; lookups answer 503 until one is fetched")
        self._schedule(0 if self._cfg.source == "vzd" else self._cfg.file_poll_interval_s)

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._inflight is not None:
            self._inflight.cancel()
        metrics.LIST_AGE.set_function(lambda: -1.0)

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._reactor.callLater(delay, self._tick)

    def _jittered(self, base: float) -> float:
        j = self._cfg.refresh_jitter
        return base * random.uniform(1 - j, 1 + j)

    def _tick(self) -> None:
        self._timer = None
        d = self.refresh()

        def reschedule(outcome: str) -> None:
            if self._cfg.source == "file":
                self._schedule(self._cfg.file_poll_interval_s)
            elif outcome in ("updated", "unchanged"):
                self._schedule(self._jittered(self._cfg.refresh_interval_s))
            else:
                self._schedule(self._jittered(self._cfg.retry_interval_s))

        d.addCallback(reschedule)

    def request_refresh(self) -> None:
        """A lookup missed: refresh now unless one ran within ``on_demand_min_interval_s``."""
        now = self._reactor.seconds()
        if self._inflight is not None or now - self._last_on_demand < self._cfg.on_demand_min_interval_s:
            return
        self._last_on_demand = now
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> defer.Deferred[str]:
        """One refresh from the source; concurrent calls share it. Never fails: fires with the outcome."""
        if self._inflight is None:
            root = defer.ensureDeferred(self._refresh_once(force))

            def failed(f: Any) -> str:
                if not f.check(defer.CancelledError):
                    log.error("federation list refresh crashed: %s", f.getTraceback())
                return "fetch_failed"

            def done(result: str) -> str:
                self._inflight = None
                return result

            root.addErrback(failed)
            root.addBoth(done)
            if root.called:
                return root
            self._inflight = root
        # Each caller gets its own Deferred so one consumer cannot swallow the result for another.
        out: defer.Deferred[str] = defer.Deferred()

        def share(result: str) -> str:
            out.callback(result)
            return result

        self._inflight.addCallback(share)
        return out

    async def _refresh_once(self, force: bool) -> str:
        if self._cfg.source == "file":
            return await self._refresh_file(force)
        assert self._vzd is not None
        try:
            raw = await self._vzd.fetch_list(self.current.version if self.current else None)
        except ListRejected as e:
            log.warning("federation list fetch from the VZD failed: %s", e)
            self._count(e.reason)
            return e.reason
        if raw is None:
            outcome = "unchanged" if self.current is not None else "not_modified_without_list"
            if self.current is not None:
                self._confirm()
        else:
            outcome = await self._offer(raw, "vzd")
        self._count(outcome)
        return outcome

    async def _refresh_file(self, force: bool) -> str:
        assert self._cfg.path is not None
        sig = file_signature(self._cfg.path)
        if sig == self._file_sig and not (force and self.current is None):
            if self.current is not None:
                self._confirm()
            return "unchanged"
        self._file_sig = sig
        try:
            raw = read_file(self._cfg.path)
        except OSError as e:
            raw = None
            log.warning("cannot read federation list file: %s", e)
        if raw is None:
            self._count("fetch_failed")
            return "fetch_failed"
        outcome = await self._offer(raw, self._cfg.path)
        self._count(outcome)
        return outcome
