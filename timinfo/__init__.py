"""TI-M Pro TiMessengerInformation API, fed from the signed VZD federation list.

Public surface used by the application wiring (nothing else is imported from outside this package):
`parse_config(section)` and `build(config, reactor)`.
"""

from timinfo.config import TimInfoConfig, parse_config

__all__ = ["TimInfoConfig", "parse_config"]
