from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.fedlist_pki import ListPki, make_list_pki

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vzd"
V1650 = FIXTURES / "federationList-ru-v1650.jws"
V956 = FIXTURES / "federationList-ru-v956.jws"
ROOTS = FIXTURES / "tsl-roots-ru.json"
KOMP_CA50 = FIXTURES / "GEM.KOMP-CA50-TEST-ONLY.pem"


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> ListPki:
    return make_list_pki(tmp_path_factory.mktemp("pki"))
