"""A pushkin that takes the Sygnal credential-file keys, for testing check-config's credential report.

Loaded through the public custom-pushkin extension point (``type: tests.ops.credpushkin.CredentialPushkin``);
it reads the keys the APNs and FCM pushkins accept (``certfile``, ``keyfile``, ``service_account_file``)
plus a secret (``api_key`` / ``api_key_file``) and delivers every push; ``fail_start: true`` makes
start() raise.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import Device, Notification, Outcome
from gateway.pushkins.base import Pushkin


@dataclass(frozen=True)
class CredentialOptions:
    certfile: str | None
    keyfile: str | None
    service_account_file: str | None
    api_key: str | None
    fail_start: bool


class CredentialPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section):  # type: ignore[no-untyped-def]
        return CredentialOptions(
            certfile=section.path_to_file("certfile", None),
            keyfile=section.path_to_file("keyfile", None),
            service_account_file=section.path_to_file("service_account_file", None),
            api_key=section.secret("api_key", None),
            fail_start=section.bool("fail_start", False),
        )

    async def start(self) -> None:
        if self.app.options.fail_start:
            raise RuntimeError("credential pushkin told to fail")

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        return Outcome.delivered()
