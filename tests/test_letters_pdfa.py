"""Letters a city hall can send: PDF/A-2b in structure, sealed with PAdES when a seal is configured (checked
with pyHanko's own validation against a test CA made here), and what they say (signatory, the call or chat
concerned, the Art. 15(1) information, neutral forms, the case mark, e-Doręczenia).

veraPDF (the reference PDF/A validator) is a Java program that no package registry reachable here ships,
so the PDF/A checks below are structural: they read the files back with pypdf, independently of
store/pdfa.py's own check (which uses pyHanko's reader), and also prove that check refuses broken files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from cim.cli import cli
from store import Store, pdfa
from store.errors import ConfigError, InvalidInput
from store.seal import load_seal
from tests.fixtures.requests import CALL_AT, PHONE, call_request, chat_request, insert_call, insert_chat
from tests.fixtures.seal import SEAL_ORGANISATION, make_test_ca
from tests.fixtures.store import PASSWORD, SYSTEM

SESSION_AT = dt.datetime(2026, 3, 20, 9, 30, tzinfo=dt.timezone.utc)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


# -- making letters through the real store ---------------------------------------------------------------


async def _access(store, people, **changes):
    req = await store.requests.register(people.registrar, call_request(**changes))
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Zgoda.")
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    return req


async def _granted(store, people, **changes):
    req = await _access(store, people, **changes)
    await store.requests.grant(
        people.director, req.id, session_at=SESSION_AT, place="Sala nr 12", attendee_ids=[people.attendee.staff_id]
    )
    return await store.requests.get(people.director, req.id)


async def _refused(store, people, **changes):
    req = await _access(store, people, **changes)
    await store.requests.refuse(people.director, req.id, "Nagranie nie dotyczy wnioskodawcy.")
    return await store.requests.get(people.director, req.id)


async def _extended(store, people):
    req = await store.requests.register(people.registrar, call_request())
    await store.requests.extend(people.director, req.id, 1, "Znaczna liczba wniosków.")
    return await store.requests.get(people.director, req.id)


async def _copied(store, people, tmp_path, **changes):
    req = await store.requests.register(
        people.dpo, chat_request(kind="copy", asked="copy", justification="", **changes)
    )
    chat = await insert_chat(store, at=CALL_AT, lines=[("resident", "jozef@example.pl"), ("consultant", "Dzień dobry")])
    await store.requests.link(people.dpo, req.id, chat)
    await store.requests.grant(people.dpo, req.id)
    await store.requests.prepare_export(people.dpo, req.id, "Adres e-mail z wniosku podany w czacie.")
    await store.requests.confirm_export(people.director, req.id, "Sprawdziłem adres e-mail w czacie.")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    await store.requests.export_copy(people.dpo, req.id, out)
    return await store.requests.get(people.dpo, req.id)


async def _every_letter(store, people, tmp_path):
    details = [
        await _granted(store, people),
        await _refused(store, people),
        await _extended(store, people),
        await _copied(store, people, tmp_path),
    ]
    letters = [d.letters[-1] for d in details]
    assert sorted(x.kind for x in letters) == ["copy", "extension", "grant", "refusal"]
    return letters


# -- PDF/A-2b structure, read back with pypdf ----------------------------------------------------------------


def _pdfa_facts(path: Path) -> dict:
    reader = PdfReader(path)
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    intents = [oi.get_object() for oi in root["/OutputIntents"]]
    fonts = {}
    for page in reader.pages:
        for _, ref in page["/Resources"]["/Font"].items():
            font = ref.get_object()
            for desc in font.get("/DescendantFonts", [font]):
                descriptor = desc.get_object()["/FontDescriptor"].get_object()
                fonts[str(font["/BaseFont"])] = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    return {
        "encrypted": reader.is_encrypted,
        "xmp": xmp,
        "intents": intents,
        "fonts": fonts,
        "id": "/ID" in reader.trailer,
        "header": path.read_bytes()[:8],
        "actions": _forbidden_actions(reader),
    }


#: Action types PDF/A-2 forbids (ISO 19005-2 6.6.1), JavaScript first.
_FORBIDDEN_ACTIONS = {
    "/JavaScript",
    "/Launch",
    "/Sound",
    "/Movie",
    "/ResetForm",
    "/ImportData",
    "/Hide",
    "/SetOCGState",
    "/Rendition",
    "/Trans",
    "/GoTo3DView",
}


def _forbidden_actions(reader: PdfReader) -> list[str]:
    """What veraPDF's action rules would flag, found by walking every object reachable from the trailer:
    a JavaScript name tree, a forbidden action type, a /JS script, additional actions (/AA) on the
    catalog, a page, a form field or an annotation."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [reader.trailer["/Root"]]
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            if (item.idnum, item.generation) in seen:
                continue
            seen.add((item.idnum, item.generation))
            item = item.get_object()
        if isinstance(item, DictionaryObject):
            if "/JavaScript" in item and item.get("/Type") != "/Action":
                found.append("a /JavaScript name tree")
            if item.get("/S") in _FORBIDDEN_ACTIONS:
                found.append(f"a {item['/S']} action")
            if "/JS" in item:
                found.append("a /JS script")
            if "/AA" in item:
                found.append("additional actions (/AA)")
            stack.extend(v for k, v in item.items() if k != "/Parent")
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    return found


def _xmp_value(xmp: str, name: str) -> str | None:
    m = re.search(rf"pdfaid:{name}(?:>|=\")\s*([^<\"]+)", xmp)
    return m.group(1).strip() if m else None


@pytest.mark.ordinance("§4.4", "§4.5", "GDPR 12(3)", "GDPR 15(3)")
async def test_every_letter_is_pdfa_2b_in_structure(store, people, tmp_path):
    icc = pdfa.ICC_PROFILE.read_bytes()
    for record in await _every_letter(store, people, tmp_path):
        facts = _pdfa_facts(record.path)
        assert not facts["encrypted"], record.kind
        assert facts["id"] and facts["header"].startswith(b"%PDF-1.7")
        assert _xmp_value(facts["xmp"], "part") == "2" and _xmp_value(facts["xmp"], "conformance") == "B"
        [intent] = facts["intents"]
        assert intent["/S"] == "/GTS_PDFA1"
        assert intent["/DestOutputProfile"].get_object().get_data() == icc  # the bundled sRGB profile, embedded
        assert facts["fonts"] and all(facts["fonts"].values()), facts["fonts"]
        assert all("DejaVu" in name for name in facts["fonts"])
        assert facts["actions"] == [], facts["actions"]  # no JavaScript, no forbidden action (6.6.1)
        assert pdfa.check(record.path.read_bytes()) == []
        assert record.sealed is False and record.sealed_by is None  # no seal configured: the register says so
        assert "nie jest opatrzone pieczęcią elektroniczną" in pdf_text(record.path)


def test_the_bundled_icc_profile_is_the_iccs_srgb_with_its_licence():
    data = pdfa.ICC_PROFILE.read_bytes()
    assert data[36:40] == b"acsp" and data[16:20] == b"RGB " and data[12:16] == b"mntr"
    assert int.from_bytes(data[:4], "big") == len(data)
    assert b"Copyright International Color Consortium" in data
    licence = (pdfa.ICC_PROFILE.parent / "LICENSE-sRGB2014.txt").read_text(encoding="utf-8")
    assert "may be copied" in licence and "International Color Consortium" in licence


def test_the_structure_check_refuses_what_is_not_pdfa():
    from fpdf import FPDF

    plain = FPDF()
    plain.add_page()
    plain.set_font("Helvetica", size=12)  # a base font: not embedded
    plain.cell(text="Hello")
    problems = pdfa.check(bytes(plain.output()))
    assert "no XMP metadata stream in the catalog" in problems
    assert "no GTS_PDFA1 output intent" in problems
    assert any("not embedded" in p for p in problems)

    locked = FPDF()
    locked.add_page()
    locked.add_font("DejaVu", "", str(pdfa.FONT_REGULAR))
    locked.set_font("DejaVu", size=12)
    locked.cell(text="Zażółć")
    locked.set_encryption(owner_password="x")
    assert any("encrypted" in p for p in pdfa.check(bytes(locked.output())))

    part3 = pdfa.document(title="t", author="a")
    part3.add_page()
    part3.set_font("DejaVu", size=12)
    part3.cell(text="x")
    good = bytes(part3.output())
    assert pdfa.check(good) == []
    wrong_part = good.replace(b"<pdfaid:part>2</pdfaid:part>", b"<pdfaid:part>1</pdfaid:part>")
    assert wrong_part != good
    assert any("part '1'" in p for p in pdfa.check(wrong_part))

    # the JavaScript check above can fail: a document with a script (and an opening action) is flagged
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject

    scripted = PdfWriter(clone_from=io.BytesIO(good))
    action = scripted._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Action"),
                NameObject("/S"): NameObject("/JavaScript"),
                NameObject("/JS"): TextStringObject("app.alert('x');"),
            }
        )
    )
    scripted._root_object[NameObject("/OpenAction")] = action
    scripted._root_object[NameObject("/Names")] = DictionaryObject(
        {
            NameObject("/JavaScript"): DictionaryObject(
                {NameObject("/Names"): ArrayObject([TextStringObject("x"), action])}
            )
        }
    )
    buffer = io.BytesIO()
    scripted.write(buffer)
    flagged = _forbidden_actions(PdfReader(io.BytesIO(buffer.getvalue())))
    assert "a /JavaScript name tree" in flagged and "a /JavaScript action" in flagged and "a /JS script" in flagged
    assert _forbidden_actions(PdfReader(io.BytesIO(good))) == []


# -- the PAdES seal ------------------------------------------------------------------------------------------


@pytest.fixture
def seal_ca(tmp_path):
    return make_test_ca(tmp_path / "seal")


@pytest.fixture
def sealed(store, seal_ca):
    """The store with the office's seal configured (as Store.open loads it; see the start-up tests below)."""
    store.requests.seal = load_seal(
        store.settings.with_(letter_seal_p12=str(seal_ca.p12), letter_seal_password_file=str(seal_ca.password_file))
    )
    return store


async def _validate(data: bytes, root):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    [sig] = reader.embedded_signatures
    status = await async_validate_pdf_signature(sig, ValidationContext(trust_roots=[root], allow_fetching=False))
    return sig, status


async def test_sealed_letters_validate_with_pyhanko_against_the_test_ca_and_stay_pdfa(
    sealed, people, tmp_path, seal_ca
):
    from pyhanko.sign.fields import MDPPerm
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    for record in await _every_letter(sealed, people, tmp_path):
        data = record.path.read_bytes()
        sig, status = await _validate(data, seal_ca.root)
        assert status.bottom_line, status.pretty_print_details()
        assert status.intact and status.valid and status.trusted
        assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES, not adbe.pkcs7.detached
        assert sig.signer_cert.subject.native["organization_name"] == SEAL_ORGANISATION
        assert sig.docmdp_level == MDPPerm.NO_CHANGES  # a certification seal: any later change shows
        assert pdfa.check(data) == []  # the seal is an incremental update; PDF/A-2b structure stays
        facts = _pdfa_facts(record.path)
        assert _xmp_value(facts["xmp"], "part") == "2" and all(facts["fonts"].values())
        assert not facts["encrypted"] and facts["actions"] == [], facts["actions"]
        assert record.sealed is True and record.sealed_by == SEAL_ORGANISATION
        assert squashed(f"opatrzone pieczęcią elektroniczną urzędu ({SEAL_ORGANISATION})") in squashed(
            pdf_text(record.path)
        )


async def test_a_changed_byte_or_an_unknown_ca_fails_validation(sealed, people, tmp_path, seal_ca):
    detail = await _granted(sealed, people)
    data = detail.letters[-1].path.read_bytes()
    # a tampered letter: one character of the printed place changed inside the signed range
    stream_at = data.index(b"stream", data.index(b"/FlateDecode"))
    tampered = bytearray(data)
    tampered[stream_at + 20] ^= 0x01
    _, status = await _validate(bytes(tampered), seal_ca.root)
    assert not status.intact and not status.bottom_line
    stranger = make_test_ca(tmp_path / "other", name="Some Other Root")
    _, status = await _validate(data, stranger.root)
    assert status.intact and not status.trusted and not status.bottom_line


async def test_a_seal_expired_since_start_up_stops_the_step_and_stores_no_letter(sealed, people):
    import dataclasses

    from store.seal import SealFailed

    sealed.requests.seal = dataclasses.replace(
        sealed.requests.seal, not_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    )
    req = await _access(sealed, people)
    with pytest.raises(SealFailed, match="expired on"):
        await sealed.requests.refuse(people.director, req.id, "Powód.")
    detail = await sealed.requests.get(people.director, req.id)
    assert detail.request.state == "awaiting_decision" and detail.letters == ()
    assert not any(sealed.settings.letters_dir.rglob("*.pdf"))


async def test_store_open_loads_the_seal_and_a_bad_seal_stops_the_start(settings, clock, tmp_path, seal_ca):
    good = settings.with_(letter_seal_p12=str(seal_ca.p12), letter_seal_password_file=str(seal_ca.password_file))
    st = await Store.open(good, create=True, clock=clock)
    try:
        assert st.requests.seal is not None and st.requests.seal.subject == SEAL_ORGANISATION
        assert "hasło" not in repr(st.requests.seal)  # the password never shows in a repr or a log line
    finally:
        await st.close()

    wrong = tmp_path / "wrong.password"
    wrong.write_text("nie to hasło\n")
    wrong.chmod(0o600)
    with pytest.raises(ConfigError, match="does not open it"):
        await Store.open(good.with_(letter_seal_password_file=str(wrong)), clock=clock)
    with pytest.raises(ConfigError, match="needs CIM_LETTER_SEAL_PASSWORD_FILE"):
        await Store.open(good.with_(letter_seal_password_file=""), clock=clock)
    with pytest.raises(ConfigError, match="is set but CIM_LETTER_SEAL_P12 is not"):
        await Store.open(good.with_(letter_seal_p12=""), clock=clock)


def test_seal_files_must_be_private_outside_the_data_dir_and_in_date(settings, tmp_path):
    open_ca = make_test_ca(tmp_path / "open", mode=0o644)
    with pytest.raises(ConfigError, match="readable by every user"):
        load_seal(
            settings.with_(letter_seal_p12=str(open_ca.p12), letter_seal_password_file=str(open_ca.password_file))
        )
    inside = make_test_ca(settings.data_dir / "seal")
    with pytest.raises(ConfigError, match="outside the data directory"):
        load_seal(settings.with_(letter_seal_p12=str(inside.p12), letter_seal_password_file=str(inside.password_file)))
    old = make_test_ca(
        tmp_path / "old", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40), valid_days=30
    )
    with pytest.raises(ConfigError, match="expired on"):
        load_seal(settings.with_(letter_seal_p12=str(old.p12), letter_seal_password_file=str(old.password_file)))
    missing = tmp_path / "nowhere.p12"
    with pytest.raises(ConfigError, match="cannot read"):
        load_seal(settings.with_(letter_seal_p12=str(missing), letter_seal_password_file=str(old.password_file)))
    not_p12 = tmp_path / "junk.p12"
    not_p12.write_bytes(b"not a certificate")
    not_p12.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PKCS#12 file"):
        load_seal(settings.with_(letter_seal_p12=str(not_p12), letter_seal_password_file=str(old.password_file)))


def test_cli_says_so_in_one_sentence_when_the_seal_password_is_wrong(settings, clock, tmp_path, seal_ca):
    async def seed():
        st = await Store.open(settings, create=True, clock=clock)
        await st.close()

    asyncio.run(seed())
    wrong = tmp_path / "wrong.password"
    wrong.write_text("zle\n")
    wrong.chmod(0o600)
    result = CliRunner().invoke(
        cli,
        ["requests", "list", "--data-dir", str(settings.data_dir)],
        env={
            "CIM_LETTER_SEAL_P12": str(seal_ca.p12),
            "CIM_LETTER_SEAL_PASSWORD_FILE": str(wrong),
            "CIM_PASSWORD_PROFILE": "fast",
        },
        catch_exceptions=False,
    )
    assert result.exit_code != 0
    assert "does not open it" in result.stderr and "Traceback" not in result.stderr


# -- what the letters say ------------------------------------------------------------------------------------


async def test_the_signatory_is_named_with_the_title_from_the_account(store, people):
    await store.accounts.set_signature(
        SYSTEM, "dyrektor", full_name="Anna Źdźbło-Nowak", job_title="Dyrektor Biura Obsługi Interesantów Urzędu Miasta"
    )
    detail = await _granted(store, people)
    text = pdf_text(detail.letters[-1].path)
    assert "Anna Źdźbło-Nowak" in text and "Dyrektor Biura Obsługi Interesantów Urzędu Miasta" in text
    staff = await store.accounts.get("dyrektor")
    assert staff.job_title == "Dyrektor Biura Obsługi Interesantów Urzędu Miasta"
    with pytest.raises(InvalidInput, match="control characters"):
        await store.accounts.set_signature(SYSTEM, "dyrektor", job_title="Dyrektor\x1b[31m")


async def test_without_a_name_on_the_account_the_role_title_signs(store, people):
    detail = await _refused(store, people)
    text = pdf_text(detail.letters[-1].path)
    assert "Dyrektor Biura Obsługi Interesantów" in text
    assert "dyrektor\n" not in text  # the login name is never printed as a signature


@pytest.mark.ordinance("§4.4")
async def test_the_grant_letter_names_the_call_concerned(store, people):
    detail = await _granted(store, people)
    flat = squashed(pdf_text(detail.letters[-1].path))
    # CALL_AT is 09:15 UTC, 10:15 in Warsaw
    assert squashed("Dotyczy: rozmowy telefonicznej z dnia 24 lutego 2026 r., godz. 10:15.") in flat


@pytest.mark.ordinance("GDPR 15(1)", "GDPR 15(3)")
async def test_the_copy_cover_letter_carries_the_article_15_1_information_for_the_controller(store, people, tmp_path):
    detail = await _copied(store, people, tmp_path)
    flat = squashed(pdf_text(detail.letters[-1].path))
    settings = store.settings
    for needed in (
        "Zgodnie z art. 15 ust. 1 RODO informuję:",
        f"Administrator danych: {settings.controller}.",
        "Cele przetwarzania:",
        "Kategorie danych: data i godzina czatu, treść wiadomości",
        f"Odbiorcy danych: {settings.data_recipients}.",
        "Okres przechowywania: 6 miesięcy od dnia rozmowy lub czatu",
        "prawo żądania sprostowania danych, ich usunięcia lub ograniczenia przetwarzania",
        "prawo wniesienia skargi do Prezesa Urzędu Ochrony Danych Osobowych",
        "Źródło danych:",
        "Dotyczy: czatu z dnia 24 lutego 2026 r., godz. 10:15.",
        "Z upoważnienia administratora danych",
        "Inspektor Ochrony Danych",
    ):
        assert squashed(needed) in flat, needed


async def test_no_pani_pan_slashes_and_the_registered_form_is_used(store, people, tmp_path):
    neutral = [pdf_text(x.path) for x in await _every_letter(store, people, tmp_path)]
    for text in neutral:
        assert not re.search(r"Pani\s*/\s*Pan|Pan\s*/\s*Pani|Panu\s*/|wnioskowała\s*/", text), text
        assert not re.search(r"\b(Pani|Pan|Panu|Pana)\b", text), text  # no form the register did not give
        assert "Szanowna" not in text and "Szanowny" not in text  # no guessed greeting
    refusal = next(t for t in neutral if "Odmowa" in t)
    assert squashed("osobie, której dane dotyczą, przysługuje prawo wniesienia skargi") in squashed(refusal)

    text = pdf_text((await _refused(store, people, addressed_as="pani")).letters[-1].path)
    assert "Szanowna Pani," in text and squashed("przysługuje Pani prawo") in squashed(text)
    text = pdf_text((await _granted(store, people, addressed_as="pan")).letters[-1].path)
    assert "Szanowny Panie," in text and squashed("zgodnie z Pana wnioskiem z dnia 1 marca 2026 r.") in squashed(text)
    with pytest.raises(InvalidInput, match="form of address"):
        await store.requests.register(people.registrar, call_request(addressed_as="Pani/Pan"))


async def test_the_case_mark_follows_the_configured_pattern(settings, clock, make_staff):
    custom = settings.with_(case_mark="BOI-CIM.1510.{n}.{yyyy}")
    st = await Store.open(custom, create=True, clock=clock)
    try:
        director = (await st.accounts.add_staff(SYSTEM, "dyr", ["boi_director"], PASSWORD)).as_actor()
        req = await st.requests.register(director, call_request())
        await st.requests.extend(director, req.id, 1, "Powód.")
        text = pdf_text((await st.requests.get(director, req.id)).letters[0].path)
        assert st.requests.case_mark(req) == "BOI-CIM.1510.1.2026"
    finally:
        await st.close()
    assert "Znak sprawy: BOI-CIM.1510.1.2026" in text
    assert "CIM/2026/0001" not in text


@pytest.mark.parametrize(
    "pattern, message",
    [("BOI-{rok}", "unknown fields rok"), ("BOI.{yyyy}", "must contain"), ("BOI.{n", "not a valid pattern")],
)
def test_a_bad_case_mark_pattern_fails_at_load(tmp_path, pattern, message):
    with pytest.raises(ConfigError, match=message):
        from store.settings import Settings

        Settings.load(tmp_path / "d", env={"CIM_CASE_MARK": pattern})


async def test_e_doreczenia_is_the_electronic_route_and_epuap_only_stays_readable(store, people):
    req = await store.requests.register(
        people.registrar, call_request(delivery="e_doreczenia", requester_email="ae:pl-12345-67890-abcde-12")
    )
    assert req.requester_email == "AE:PL-12345-67890-ABCDE-12"
    await store.requests.extend(people.director, req.id, 1, "Powód.")
    text = pdf_text((await store.requests.get(people.director, req.id)).letters[0].path)
    assert squashed("Doręczenie elektroniczne (e-Doręczenia) na adres: AE:PL-12345-67890-ABCDE-12") in squashed(text)

    with pytest.raises(InvalidInput, match="ePUAP is no longer"):
        await store.requests.register(people.registrar, call_request(delivery="epuap", requester_email="/um/skrytka"))
    with pytest.raises(InvalidInput, match="ePUAP is no longer"):
        await store.requests.register(people.registrar, call_request(delivery="post", requester_email="/um/skrytka"))
    with pytest.raises(InvalidInput, match="needs the requester's address for electronic delivery"):
        await store.requests.register(
            people.registrar, call_request(delivery="e_doreczenia", requester_email="jan@example.pl")
        )
    with pytest.raises(InvalidInput, match="nor an address for e-Doręczenia"):
        await store.requests.register(people.registrar, call_request(requester_email="AE:PL-1234"))

    # an older record registered for ePUAP is still read, shown and answered (by post)
    async with store.db.write() as tx:
        await tx.execute(
            "UPDATE access_requests SET delivery = 'epuap', requester_email = '/um/skrytka' WHERE id = ?", (req.id,)
        )
    old = (await store.requests.get(people.director, req.id)).request
    assert old.delivery == "epuap" and old.requester_email == "/um/skrytka"
    from store.requests import DELIVERY_LABELS

    assert "ePUAP" in DELIVERY_LABELS[old.delivery]


def test_cli_sets_the_signature_and_shows_sealed_per_letter(settings, clock):
    async def seed():
        st = await Store.open(settings, create=True, clock=clock)
        try:
            await st.accounts.add_staff(SYSTEM, "dyr", ["boi_director"], PASSWORD)
        finally:
            await st.close()

    asyncio.run(seed())
    data_dir = str(settings.data_dir)
    env = {"CIM_PASSWORD_PROFILE": "fast"}
    result = CliRunner().invoke(
        cli,
        [
            "users",
            "signature",
            "dyr",
            "--full-name",
            "Anna Nowak",
            "--title",
            "Dyrektor BOI",
            "--data-dir",
            data_dir,
            "--json",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert '"job_title": "Dyrektor BOI"' in result.stdout and '"full_name": "Anna Nowak"' in result.stdout
    result = CliRunner().invoke(cli, ["users", "signature", "dyr", "--data-dir", data_dir], env=env)
    assert result.exit_code == 2 and "--full-name, --title or both" in result.stderr

    async def letter():
        st = await Store.open(settings, clock=clock)
        try:
            director = (await st.accounts.get("dyr")).as_actor()
            req = await st.requests.register(director, call_request())
            await st.requests.extend(director, req.id, 1, "Powód.")
            return req.number
        finally:
            await st.close()

    number = asyncio.run(letter())
    result = CliRunner().invoke(
        cli, ["requests", "show", number, "--json", "--data-dir", data_dir], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert '"sealed": false' in result.stdout and '"case_mark": "CIM/2026/0001"' in result.stdout
