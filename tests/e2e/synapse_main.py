"""Start Synapse's homeserver tolerating a newer version of one optional Synapse dependency it does not use.

Synapse's start-up check refuses to run when an *optional* dependency is installed at a version its
extras do not list: ``txredisapi`` 1.6 (a client the gateway's test tooling may install) trips its
``redis`` extra pin ``<1.6``. The homeserver under test has no Redis configured, so that package is never
imported. Every other dependency problem still stops Synapse exactly as before.

Usage: ``python -m tests.e2e.synapse_main -c homeserver.yaml`` (same arguments as
``python -m synapse.app.homeserver``).
"""

from __future__ import annotations

import sys

from synapse.util import check_dependencies

#: Optional Synapse dependencies whose version mismatch is irrelevant for the homeserver under test.
UNUSED_OPTIONAL = {'"txredisapi"'}

_original = check_dependencies.check_requirements


def _check_requirements(extra: str | None = None) -> None:
    try:
        _original(extra)
    except check_dependencies.DependencyException as e:
        if extra is not None or not set(e.dependencies) <= UNUSED_OPTIONAL:
            raise
        sys.stderr.write(f"note: ignoring unused optional dependency versions: {', '.join(e.args[0])}\n")


check_dependencies.check_requirements = _check_requirements

if __name__ == "__main__":
    from synapse.app.homeserver import main

    main()
