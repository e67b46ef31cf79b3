"""Assembles the pieces (trust store, HTTP client, token verifier, list manager, resource)."""

from __future__ import annotations

from typing import Any

from timinfo.auth import TokenVerifier
from timinfo.config import TimInfoConfig
from timinfo.federation import FederationListManager
from timinfo.http import make_client
from timinfo.pki import load_trust
from timinfo.resource import TimInfoResource


class TimInfoService:
    """What the application mounts and drives: `.resource` at `.prefix`, `start()`, `stop()`, `ready()`."""

    def __init__(self, config: TimInfoConfig, reactor: Any, *, version: str) -> None:
        self.config = config
        self.prefix = config.path_prefix
        self._client, self._pool = make_client(reactor)
        self.manager = FederationListManager(config.federation_list, reactor, self._client,
                                             load_trust(config.federation_list.trust))
        self.verifier = TokenVerifier(config, reactor, self._client)
        # ``version`` in the InfoObject is the interface version; the software version goes in the description.
        info = {"title": config.info.title, "version": config.info.version,
                "description": config.info.description or f"TI-Messenger information API (tim-push-gateway {version})"}
        if config.info.contact:
            info["contact"] = config.info.contact
        self.resource = TimInfoResource(info, self.verifier, self.manager)

    async def start(self) -> None:
        await self.manager.start()

    async def stop(self) -> None:
        await self.manager.stop()
        await self._pool.closeCachedConnections()

    def ready(self) -> tuple[bool, str]:
        if self.manager.index is None:
            return False, "no verified federation list"
        return True, f"federation list v{self.manager.index.version}"


def build(config: TimInfoConfig, reactor: Any, *, version: str) -> TimInfoService:
    return TimInfoService(config, reactor, version=version)
