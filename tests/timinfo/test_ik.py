import pytest

from timinfo.ik import check_digit, is_ik_format, is_insurer_ik, is_valid_ik


@pytest.mark.parametrize("ik", ["101575519", "104940005", "108433248", "168140346", "950585030", "104127692",
                                "260326822"])
def test_valid_check_digits(ik: str) -> None:
    assert is_valid_ik(ik)
    assert check_digit(ik[:8]) == int(ik[8])


@pytest.mark.parametrize("ik", ["101575518", "104940000", "109991908", "101108153", "101108151", "103499412"])
def test_invalid_check_digits(ik: str) -> None:
    assert is_ik_format(ik)
    assert not is_valid_ik(ik)


def test_gr_ik_worked_example_is_not_luhn() -> None:
    # GR-IK §1.2.5: digit sums 0,3,4,6,7,2 = 22 -> check digit 2 (Luhn would give 8).
    assert check_digit("26032682") == 2


@pytest.mark.parametrize("value", ["12345678", "1234567890", "10494000a", "", "１０４９４０００５", " 04940005",
                                   "10494000\n"])
def test_format(value: str) -> None:
    assert not is_ik_format(value)


def test_insurer_prefix_rule() -> None:
    assert is_insurer_ik("104940005")
    assert is_insurer_ik("168140346")
    assert is_insurer_ik("950585030")
    assert not is_insurer_ik("260326822")  # valid check digit, wrong classification
