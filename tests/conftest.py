"""Shared test set-up: the ordinance marker as a JUnit property, and fixture modules from tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

# Each area's fixtures live in their own module under tests/fixtures/ (store, chat, ...).
pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)


@pytest.fixture(autouse=True)
def _ordinance_property(request: pytest.FixtureRequest, record_property) -> None:
    """Record every @pytest.mark.ordinance("§x") as a JUnit property named `ordinance` (DESIGN.md 5.3)."""
    for marker in request.node.iter_markers("ordinance"):
        for provision in marker.args:
            record_property("ordinance", provision)


@pytest.fixture(autouse=True)
def _no_second_factor_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests sign in with a password alone unless they ask for a second factor.

    CIM_MFA_ROLES's product default (`default`: designated, cim_manager, it_admin, boi_director, dpo)
    is emptied for the tests in this process; the second-factor tests set mfa_roles explicitly, and
    tests/test_identity_mfa.py checks the product default itself.
    """
    import store.settings

    monkeypatch.setattr(store.settings, "DEFAULT_MFA_ROLES", "")


@pytest.fixture(autouse=True)
def _staff_language(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Staff text is Polish by default (store/i18n.py); the older tests read English screens and messages.

    Every test runs with CIM_STAFF_LANG=en (subprocesses inherit it) unless marked
    `@pytest.mark.staff_lang("pl")`, which is how the Polish-default tests run; the language of the
    process is reset before and after each test.
    """
    from store import i18n

    marker = request.node.get_closest_marker("staff_lang")
    lang = marker.args[0] if marker else "en"
    if lang is None:
        monkeypatch.delenv("CIM_STAFF_LANG", raising=False)
    else:
        monkeypatch.setenv("CIM_STAFF_LANG", lang)
    i18n.set_language(None)
    yield
    i18n.set_language(None)
