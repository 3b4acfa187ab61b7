"""The live desk without a server: every /staff event is read into a typed payload and folded in by its
reducer (tui/live/desk.py); a malformed payload changes nothing and raises nothing; system lines read in
the staff member's language from their event (issue 16), the stored text when a server sends none."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from store.i18n import set_language
from tui.live import REDUCERS, Desk, Live, LiveChat, LiveMessage, parse
from tui.live.client import LiveClient
from tui.live.payloads import READERS

HISTORY = [
    {
        "seq": 1,
        "from": "system",
        "text": "Mieszkaniec zaakceptował informację (wersja 3, język pl).",
        "at": "2026-03-02T09:00:00Z",
        "event": "notice_accepted",
        "params": {"version": 3, "lang": "pl"},
    },
    {
        "seq": 2,
        "from": "system",
        "text": "Rozmowa oczekuje w kolejce na konsultanta.",
        "at": "2026-03-02T09:00:00Z",
        "event": "queued",
        "params": {},
    },
    {
        "seq": 3,
        "from": "system",
        "text": "Rozmowę przejął konsultant anna.",
        "at": "2026-03-02T09:01:00Z",
        "event": "accepted",
        "params": {"consultant": "Anna"},
    },
    {"seq": 4, "from": "resident", "text": "Dzień dobry", "at": "2026-03-02T09:01:10Z"},
]


def assigned_desk() -> Desk:
    desk = Desk(staff_id=1)
    desk.apply("assigned", {"chat_id": 7, "lang": "pl", "history": HISTORY})
    return desk


def test_every_event_the_client_follows_has_a_reader_and_a_reducer() -> None:
    assert set(LiveClient.EVENTS) == set(READERS)
    samples = {
        "queue": {"chats": []},
        "presence": {"consultants": []},
        "assigned": {"chat_id": 1},
        "message": {"chat_id": 1, "seq": 1},
        "typing": {"chat_id": 1},
        "released": {"chat_id": 1},
        "supervised": {"chat_id": 1},
        "whisper": {"chat_id": 1, "note_id": 1, "after_seq": 1},
        "chat_state": {"chat_id": 1},
    }
    assert set(samples) == set(READERS)
    assert {type(parse(event, data)) for event, data in samples.items()} == set(REDUCERS)


def test_the_queue_reports_each_new_chat_once_and_leaves_out_our_own() -> None:
    desk = assigned_desk()
    first = desk.apply(
        "queue",
        {
            "chats": [{"chat_id": 9, "position": 2}, {"chat_id": 8, "position": 1}, {"chat_id": 7, "position": 3}],
            "total": 12,
        },
    )
    assert first == Live.QueueChanged(new=[8, 9])
    assert [q.chat_id for q in desk.queue] == [8, 9] and desk.queue_total == 12
    assert desk.apply("queue", {"chats": [{"chat_id": 9}]}) == Live.QueueChanged(new=[])
    assert desk.queue_total == 1


def test_lines_count_as_unread_only_in_a_chat_not_shown() -> None:
    desk = assigned_desk()
    desk.apply("assigned", {"chat_id": 8, "history": []})
    assert desk.selected == 7
    line = {"seq": 5, "from": "resident", "text": "Halo?", "at": "2026-03-02T09:02:00Z"}
    received = desk.apply("message", {"chat_id": 8, **line})
    assert isinstance(received, Live.LineReceived) and received.line.text == "Halo?"
    desk.apply("message", {"chat_id": 7, **line})
    desk.apply("message", {"chat_id": 8, **line})  # the same line again (a resync): counted once
    assert (desk.chats[7].unread, desk.chats[8].unread) == (0, 1)
    assert desk.apply("message", {"chat_id": 99, **line}) is None  # not ours: nothing changes


def test_released_drops_the_chat_unless_the_resident_left() -> None:
    desk = assigned_desk()
    desk.apply("typing", {"chat_id": 7, "active": True})
    assert desk.apply("released", {"chat_id": 7, "reason": "resident_left"}) == Live.Released(7, "resident_left")
    assert desk.chats[7].status == "left" and not desk.chats[7].resident_typing
    taken = desk.apply("released", {"chat_id": 7, "reason": "taken_over", "by": {"name": "Barbara Nadzorcza"}})
    assert taken == Live.Released(7, "taken_over", "Barbara Nadzorcza")
    assert 7 not in desk.chats and desk.selected is None


def test_the_outbox_keeps_one_id_for_the_same_text_until_it_is_forgotten() -> None:
    chat = LiveChat(chat_id=1)
    first = chat.outgoing("Numer sprawy 12")
    assert chat.outgoing("Numer sprawy 12") is first and chat.outbox == [first]
    other = chat.outgoing("Inny tekst")
    assert other.client_msg_id != first.client_msg_id and chat.outbox == [first, other]
    chat.forget(first)
    assert chat.outgoing("Numer sprawy 12").client_msg_id != first.client_msg_id  # sent again on purpose: new


def test_system_lines_read_in_the_staff_language_from_their_event() -> None:
    desk = assigned_desk()
    lines = desk.chats[7].lines
    try:
        set_language("en")
        assert [line.shown for line in lines] == [
            "The resident accepted the personal data notice (version 3, language pl).",
            "The chat is waiting in the queue.",
            "Chat taken: Anna.",
            "Dzień dobry",
        ]
        set_language("pl")
        assert lines[1].shown == "Rozmowa czeka w kolejce."
        assert lines[2].shown == "Rozmowę przyjmuje: Anna."
        assert "przejął" not in " ".join(line.shown for line in lines)
    finally:
        set_language(None)


def test_a_system_line_names_its_staff_member_by_full_name_then_display_then_log_in_name() -> None:
    """Issue 16: the server's `staff` on a staff-side line; without it, the display name in the parameters."""
    desk = assigned_desk()
    base = {"chat_id": 7, "from": "system", "text": "Połączono z konsultantem.", "event": "accepted"}
    params = {"consultant": "Konsultant CIM"}
    staff = {"staff_id": 3, "login": "anna.k", "full_name": "Anna Nowak", "display_name": "Anna"}
    desk.apply("message", {**base, "seq": 5, "params": params, "staff": staff})
    desk.apply("message", {**base, "seq": 6, "params": params, "staff": {**staff, "full_name": ""}})
    desk.apply("message", {**base, "seq": 7, "params": {}, "staff": {"login": "anna.k", "full_name": " "}})
    desk.apply("message", {**base, "seq": 8, "params": params})  # an older server: the display name
    desk.apply("message", {**base, "seq": 9, "params": params, "staff": "Anna Nowak"})  # malformed: ignored
    try:
        set_language("en")
        assert [line.shown for line in desk.chats[7].lines[-5:]] == [
            "Chat taken: Anna Nowak.",
            "Chat taken: Anna.",
            "Chat taken: anna.k.",
            "Chat taken: Konsultant CIM.",
            "Chat taken: Konsultant CIM.",
        ]
        set_language("pl")
        assert desk.chats[7].lines[-5].shown == "Rozmowę przyjmuje: Anna Nowak."
    finally:
        set_language(None)


def test_a_system_line_without_its_event_shows_the_stored_text() -> None:
    desk = assigned_desk()
    desk.apply("message", {"chat_id": 7, "seq": 5, "from": "system", "text": "Linia serwera bez zdarzenia."})
    desk.apply(
        "message",
        {"chat_id": 7, "seq": 6, "from": "system", "text": "Nieznane.", "event": "no_such_event", "params": {"x": 1}},
    )
    desk.apply(
        "message",
        {
            "chat_id": 7,
            "seq": 7,
            "from": "system",
            "text": "Zła forma.",
            "event": "accepted",
            "params": ["not", "a", "dict"],
        },
    )
    shown = [line.shown for line in desk.chats[7].lines[4:]]
    assert shown[:2] == ["Linia serwera bez zdarzenia.", "Nieznane."]
    assert shown[2] != "Zła forma." and "{" not in shown[2]  # the event in words, parameters left out


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)
keys = st.sampled_from(
    [
        "chat_id",
        "seq",
        "from",
        "text",
        "at",
        "event",
        "params",
        "history",
        "chats",
        "total",
        "consultants",
        "by",
        "reason",
        "active",
        "status",
        "note_id",
        "after_seq",
        "lang",
        "topic",
        "position",
        "waiting_since",
    ]
)
payloads = st.one_of(json_values, st.dictionaries(keys, json_values, max_size=6))


@settings(max_examples=300, deadline=None)
@given(event=st.sampled_from(sorted(READERS) + ["nonsense"]), data=payloads)
def test_a_malformed_event_never_raises_and_leaves_a_consistent_desk(event, data) -> None:
    desk = assigned_desk()
    message = desk.apply(event, data)
    assert message is None or isinstance(message, LiveMessage)
    for chat in desk.chats.values():
        assert all(isinstance(line.shown, str) for line in chat.lines)
        assert chat.lines == sorted(chat.lines, key=lambda line: line.order)
    assert all(isinstance(q.chat_id, int) for q in desk.queue)


def test_a_whisper_sent_with_the_assignment_is_in_the_new_handlers_transcript_at_once() -> None:
    """Issue 17: after a transfer or take-over, `assigned` carries the chat's whispers (`notes`); the new
    handler's transcript shows them without a reconnect, in order after the line they follow."""
    desk = Desk(staff_id=2)
    note = {
        "chat_id": 7,
        "note_id": 11,
        "after_seq": 3,
        "text": "Proszę sprawdzić meldunek.",
        "at": "2026-03-02T09:01:30Z",
        "by": {"name": "Kierownik CIM"},
    }
    desk.apply("assigned", {"chat_id": 7, "lang": "pl", "history": HISTORY, "notes": [note, {"note_id": "x"}]})
    lines = desk.chats[7].lines
    notes = [line for line in lines if line.sender == "note"]
    assert [(n.note_id, n.text, n.author) for n in notes] == [(11, "Proszę sprawdzić meldunek.", "Kierownik CIM")]
    assert [line.seq for line in lines if line.sender != "note"] == [1, 2, 3, 4]
    # the same assignment again (a reconnect's my_chats) adds nothing twice
    desk.apply("assigned", {"chat_id": 7, "lang": "pl", "history": HISTORY, "notes": [note]})
    assert [line.note_id for line in desk.chats[7].lines if line.sender == "note"] == [11]


def test_every_release_reason_of_the_protocol_has_words() -> None:
    from tui.live.errors import RELEASE_REASONS
    from webchat import protocol

    assert set(RELEASE_REASONS) == set(protocol.RELEASE_REASONS)


def test_every_staff_error_code_of_the_protocol_has_a_sentence() -> None:
    from tui.live.errors import CLIENT_CODES, ERROR_MESSAGES
    from webchat import protocol

    assert set(ERROR_MESSAGES) == set(protocol.STAFF_CODES) | CLIENT_CODES
