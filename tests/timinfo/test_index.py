import orjson

from timinfo.fedlist import build_index


def _index(entries):
    return build_index(orjson.dumps({"version": 3, "domainList": entries}))


def test_ik_and_iks_both_accepted_and_case_folded() -> None:
    idx = _index([
        {"domain": "A.example", "isInsurance": True, "ik": ["104940005"]},
        {"domain": "b.example", "isInsurance": True, "iks": ["168140346"], "timAnbieter": None},
        {"domain": "c.example", "isInsurance": True, "ik": [104127692]},  # legacy integer IK
    ])
    assert idx.find_by_ik("104940005") == "a.example"
    assert idx.find_by_ik("168140346") == "b.example"
    assert idx.find_by_ik("104127692") == "c.example"
    assert idx.is_insurance("a.example") is True


def test_tolerates_quirks() -> None:
    idx = _index([
        {"domain": "ins.example", "isInsurance": True, "ik": []},
        {"domain": "dup.example", "isInsurance": False},
        {"domain": "dup.example", "isInsurance": True},
        {"domain": "nulls.example", "isInsurance": False, "timAnbieter": None, "ik": None},
        {"telematikID": "no-domain"},
        "not an object",
        {"domain": "odd.example", "isInsurance": True, "ik": ["12345", "104940005"]},
        {"domain": "second.example", "isInsurance": True, "ik": ["104940005"]},
    ])
    assert idx.is_insurance("ins.example") is True
    assert idx.is_insurance("dup.example") is True
    assert idx.stats.duplicate_domains == 1
    assert idx.stats.skipped_entries == 2
    assert idx.find_by_ik("104940005") == "odd.example"  # first listing wins
    assert idx.find_by_ik("12345") is None
    assert idx.stats.invalid_iks == 1
