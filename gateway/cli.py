"""Command line: ``tim-push-gateway [serve] --config FILE`` and operator sub-commands.

The asyncio reactor is installed here, at process start, before anything imports the reactor.
Exit codes: 0 clean stop, 1 start-up or runtime failure, 2 configuration/usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tim-push-gateway", description="TI-M push gateway and TI-M information API")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", help="config file (default: $TIM_PUSH_GATEWAY_CONFIG)")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (default)")
    serve.add_argument("--config", dest="serve_config", help="config file (default: $TIM_PUSH_GATEWAY_CONFIG)")
    check = sub.add_parser("check-config", help="validate a config file and print it resolved, secrets masked")
    check.add_argument("file", nargs="?", help="config file (default: --config / $TIM_PUSH_GATEWAY_CONFIG)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        from gateway.commands import check_config

        return check_config(args.file or args.config)
    return serve(getattr(args, "serve_config", None) or args.config)


def serve(config_arg: str | None) -> int:
    from gateway.config.load import config_path, load_config
    from gateway.config.reader import ConfigError

    try:
        config = load_config(config_path(config_arg))
    except ConfigError as e:
        print(f"tim-push-gateway: config error: {e}", file=sys.stderr)
        return 2

    from gateway import logsetup
    from gateway import reactor as reactor_mod

    reactor = reactor_mod.install()
    logsetup.setup(config.logging.level, config.logging.format)

    from twisted.internet import defer

    from gateway.app import GatewayApp, StartupError

    failure: list[str] = []
    try:
        app = GatewayApp(config, reactor)
    except Exception as e:
        print(f"tim-push-gateway: start-up failed: {e}", file=sys.stderr)
        return 1

    def started_failed(f: Any) -> None:
        msg = str(f.value) if f.check(StartupError) else f"{f.type.__name__}: {f.getErrorMessage()}"
        failure.append(msg)
        if not f.check(StartupError):
            import logging

            logging.getLogger("gateway").error("start-up failed", exc_info=(f.type, f.value, f.getTracebackObject()))
        reactor.stop()

    def start() -> None:
        defer.ensureDeferred(app.start()).addErrback(started_failed)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(app.shutdown()))
    reactor.run()
    if failure:
        print(f"tim-push-gateway: start-up failed: {failure[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
