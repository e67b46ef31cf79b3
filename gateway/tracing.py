"""Optional OpenTelemetry tracing: notify request → per-device dispatch → provider call.

Off by default, and then every hook is one ``if _tracer is None`` check. When enabled, the notify span
continues the trace named by the incoming W3C ``traceparent``/``tracestate`` headers (as sent by a traced
homeserver). Twisted runs each coroutine in a copy of the current `contextvars` context, so making the
notify span current while the handler coroutine is created is enough for the dispatch spans started
inside it to become its children. Attributes are ids and outcomes only — never pushkeys, tokens, user
ids or message content. Trace context is not propagated to Apple or Google.

Config::

    tracing: {enabled: false, service_name: tim-push-gateway, exporter: otlp, endpoint: null}

``exporter: otlp`` sends OTLP/HTTP (protobuf) to ``endpoint`` (default: the exporter's own default or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), batched; ``exporter: console`` writes one JSON span per line
to stdout, synchronously (for debugging).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from gateway.config.reader import Section

_tracer: Any = None
_provider: Any = None
#: The opentelemetry API the hooks use, bound once by setup(): the package is optional, and importing
#: inside each hook (or building a propagator per request) would cost every traced request.
_otel: Any = None

#: Modules each exporter needs, and the package that provides them (for the config error).
_NEEDS = {
    "console": (("opentelemetry.sdk.trace", "opentelemetry-sdk"),),
    "otlp": (("opentelemetry.sdk.trace", "opentelemetry-sdk"),
             ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry-exporter-otlp-proto-http")),
}


@dataclass(frozen=True)
class TracingConfig:
    enabled: bool = False
    service_name: str = "tim-push-gateway"
    exporter: str = "otlp"
    #: OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces; None: the exporter's default.
    endpoint: str | None = None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def parse_config(s: Section) -> TracingConfig:
    d = TracingConfig()
    cfg = TracingConfig(
        enabled=s.bool("enabled", d.enabled),
        service_name=s.str("service_name", d.service_name),
        exporter=s.str("exporter", d.exporter, choices=tuple(_NEEDS)),
        endpoint=s.str("endpoint", None),
    )
    if cfg.endpoint is not None and cfg.exporter != "otlp":
        raise s.error("endpoint", "only used with exporter: otlp")
    if cfg.endpoint is not None and not cfg.endpoint.startswith(("http://", "https://")):
        raise s.error("endpoint", f"must be an http(s):// URL, got {cfg.endpoint!r}")
    if cfg.enabled:
        missing = [pkg for module, pkg in _NEEDS[cfg.exporter] if not _importable(module)]
        if missing:
            raise s.error("enabled", f"tracing needs the Python package(s) {', '.join(missing)} "
                          "(pip install 'tim-push-gateway[tracing]'), or set tracing.enabled: false")
    s.finish()
    return cfg


def setup(cfg: TracingConfig | None) -> None:
    """Create the tracer provider and exporter (at process start, after the config was validated)."""
    global _tracer, _provider, _otel
    if cfg is None or not cfg.enabled:
        return
    from types import SimpleNamespace

    from opentelemetry import context, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    import gateway

    provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name,
                                                        "service.version": gateway.__version__}))
    if cfg.exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        kw = {"endpoint": cfg.endpoint} if cfg.endpoint else {}
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(**kw)))
    # Our own provider, not the global one: nothing else in the process starts exporting by accident.
    _provider = provider
    _tracer = provider.get_tracer("gateway")
    _otel = SimpleNamespace(context=context, trace=trace, SpanKind=SpanKind, Status=Status, StatusCode=StatusCode,
                            propagator=TraceContextTextMapPropagator())


def shutdown() -> None:
    """Flush and stop the exporter (on process shutdown)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    # _otel stays bound: spans still open (requests cut by the shutdown) end through it.
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


# -- hooks used by the request path -----------------------------------------------------------------------

class _Headers:
    """W3C trace-context getter over twisted.web request headers."""

    @staticmethod
    def get(carrier: Any, key: str) -> list[str] | None:
        values = carrier.getRawHeaders(key.encode("ascii"))
        return [v.decode("latin-1") for v in values] if values else None

    @staticmethod
    def keys(carrier: Any) -> list[str]:
        return [k.decode("latin-1").lower() for k, _ in carrier.getAllRawHeaders()]


def start_notify(request: Any) -> Any:
    """The server span of one notify request, continuing the caller's trace; None when tracing is off."""
    if _tracer is None:
        return None
    parent = _otel.propagator.extract(request.requestHeaders, getter=_Headers)
    span = _tracer.start_span("notify", context=parent, kind=_otel.SpanKind.SERVER, attributes={
        "http.request.method": request.method.decode("latin-1"),
        "url.path": request.path.decode("latin-1")[:200],
        "request_id": request.request_id,
    })
    request.notifyFinish().addBoth(_end_notify, request, span)
    return span


def _end_notify(_: Any, request: Any, span: Any) -> None:
    code = int(request.code)
    span.set_attribute("http.response.status_code", code)
    if code >= 500:
        span.set_status(_otel.Status(_otel.StatusCode.ERROR))
    span.end()
    return None


def in_span(span: Any, fn: Any, *args: Any) -> Any:
    """Call `fn(*args)` with `span` current, so coroutines (and their context copies) created there nest."""
    if span is None:
        return fn(*args)
    token = _otel.context.attach(_otel.trace.set_span_in_context(span))
    try:
        return fn(*args)
    finally:
        _otel.context.detach(token)


def note_notification(span: Any, notification: Any) -> None:
    if span is not None:
        span.set_attribute("notification.devices", len(notification.devices))
        span.set_attribute("notification.badge_only", notification.is_badge_only)
        if notification.event_id is not None:
            span.set_attribute("matrix.event_id", notification.event_id[:255])


def start_device(pushkin: Any) -> tuple[Any, Any]:
    """(dispatch span, provider-call span) for one device; (None, None) when tracing is off.

    The dispatch span covers the device's whole handling in the gateway; the provider-call span (its
    child) covers the pushkin's send, including its in-request retries.
    """
    if _tracer is None:
        return None, None
    attrs = {"push.app_id": pushkin.app_id, "push.pushkin": pushkin.app.type}
    dispatch = _tracer.start_span("dispatch", attributes=attrs)
    call = _tracer.start_span(f"{pushkin.app.type} send", context=_otel.trace.set_span_in_context(dispatch),
                              kind=_otel.SpanKind.CLIENT, attributes=attrs)
    return dispatch, call


def end_device(spans: tuple[Any, Any], outcome: Any) -> None:
    dispatch, call = spans
    if dispatch is None:
        return
    for span in (call, dispatch):
        span.set_attribute("push.outcome", outcome.status.value)
        span.set_attribute("push.reason", outcome.reason or "none")
        if outcome.status.value in ("failed", "temporary"):
            span.set_status(_otel.Status(_otel.StatusCode.ERROR, outcome.reason or outcome.status.value))
        span.end()
