"""TI-M Pro TiMessengerInformation API, fed from the signed VZD federation list.

Public surface used by the application wiring (nothing else is imported from outside this package):
`parse_config(section)` -> `TimInfoConfig`, `build(config, reactor, version=...)` -> `TimInfoService`
(``.resource``, ``.prefix``, ``start()``, ``stop()``, ``ready()``) and `timinfo.cli.verify_main(argv)`.
"""

from timinfo.config import TimInfoConfig, parse_config
from timinfo.service import TimInfoService, build

__all__ = ["TimInfoConfig", "TimInfoService", "build", "parse_config"]
