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
    push = sub.add_parser("send-test-push", help="send one real push through the pushkin configured for an app id")
    push.add_argument("--app-id", required=True, help="app id as a pusher would register it")
    push.add_argument("--pushkey", required=True, help="the device's pushkey (APNs token / FCM registration token)")
    push.add_argument("--config", dest="sub_config", help="config file (default: $TIM_PUSH_GATEWAY_CONFIG)")
    push.add_argument("--timeout", type=float, default=None, help="seconds to wait for the provider's answer")
    hc = sub.add_parser("healthcheck", help="exit 0 when the local gateway answers /health (container probes)")
    hc.add_argument("--config", dest="sub_config", help="config file (default: $TIM_PUSH_GATEWAY_CONFIG)")
    hc.add_argument("--ready", action="store_true", help="probe /ready instead of /health")
    hc.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    fl = sub.add_parser("federation-list", help="federation list tools")
    fl.add_argument("action", choices=("verify",), help="verify FILE [--trust PEM ...]: check a list offline")
    fl.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the action (see: verify --help)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        from gateway.commands import check_config

        return check_config(args.file or args.config)
    if args.command == "send-test-push":
        from gateway.commands import send_test_push

        return send_test_push(args.sub_config or args.config, args.app_id, args.pushkey, args.timeout)
    if args.command == "healthcheck":
        from gateway.commands import healthcheck

        return healthcheck(args.sub_config or args.config, "/ready" if args.ready else "/health", args.timeout)
    if args.command == "federation-list":
        from gateway.commands import federation_list

        return federation_list(args.action, args.args)
    return serve(getattr(args, "serve_config", None) or args.config)


def serve(config_arg: str | None) -> int:
    from gateway.config.load import config_path, load_config
    from gateway.config.reader import ConfigError

    try:
        config = load_config(config_path(config_arg))
    except ConfigError as e:
        print(f"tim-push-gateway: config error: {e}", file=sys.stderr)
        return 2

    from gateway import gctune, logsetup
    from gateway import reactor as reactor_mod

    reactor = reactor_mod.install()
    logsetup.setup(config.logging.level, config.logging.format)

    from twisted.internet import defer

    from gateway import tracing

    tracing.setup(config.tracing)
    _export_credential_expiry(config.source)
    reactor.addSystemEventTrigger("after", "shutdown", tracing.shutdown)

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
        d = defer.ensureDeferred(app.start())
        d.addCallback(lambda _: gctune.apply(config.server.gc_threshold))
        d.addErrback(started_failed)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(app.shutdown()))
    reactor.run()
    if failure:
        print(f"tim-push-gateway: start-up failed: {failure[0]}", file=sys.stderr)
        return 1
    return 0


def _export_credential_expiry(source: str) -> None:
    """Publish certificate expiry dates as metrics; unreadable files are the pushkins' start-up errors."""
    from gateway import credentials

    credentials.export_expiry(credentials.inspect_config(source))


if __name__ == "__main__":
    sys.exit(main())
