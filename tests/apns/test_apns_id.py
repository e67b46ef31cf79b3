"""The apns-id: stable per (app, pushkey, event), RFC 4122 shaped, identical to the stdlib's uuid5."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from gateway.pushkins.apns import _APNS_ID_NAMESPACE, apns_id_for

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(text, text, text)
def test_event_ids_match_stdlib_uuid5(app_id: str, pushkey: str, event_id: str) -> None:
    expected = uuid.uuid5(uuid.UUID(bytes=_APNS_ID_NAMESPACE), f"{app_id}\x00{pushkey}\x00{event_id}")
    got = apns_id_for(app_id, pushkey, event_id)
    assert got == str(expected)
    assert apns_id_for(app_id, pushkey, event_id) == got


def test_different_events_differ_and_pokes_are_fresh_v4() -> None:
    assert apns_id_for("a", "k", "$1") != apns_id_for("a", "k", "$2")
    pokes = {apns_id_for("a", "k", None) for _ in range(100)}
    assert len(pokes) == 100
    for p in pokes:
        u = uuid.UUID(p)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == p
