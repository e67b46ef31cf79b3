"""TI-M Push Gateway: a Matrix push gateway for APNs and FCM, with the TI-M TiMessengerInformation API.

Importing this package never installs or imports a reactor; the CLI does that exactly once at start.
"""

__version__ = "0.1.0"
