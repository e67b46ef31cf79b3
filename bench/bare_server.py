"""Baseline for benches: a bare twisted.web endpoint answering constant JSON, on the same reactor."""

from __future__ import annotations

import sys

from gateway import reactor as reactor_mod

reactor = reactor_mod.install()

from twisted.web import resource, server  # noqa: E402

BODY = b'{"rejected":[]}'


class Constant(resource.Resource):
    isLeaf = True

    def render(self, request):  # type: ignore[no-untyped-def]
        request.content.read()
        request.setHeader(b"Content-Type", b"application/json")
        return BODY


site = server.Site(Constant())
site.log = lambda r: None  # type: ignore[method-assign]
reactor.listenTCP(int(sys.argv[1]), site, backlog=1024, interface="127.0.0.1")
reactor.run()
