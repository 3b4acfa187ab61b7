"""Seed version 1 of the chat (§1.5) and phone (§1.4) notices, verbatim from the ordinance."""

from store.notice_texts import CHAT_EN, CHAT_PL, PHONE_EN, PHONE_PL

_INSERT = (
    "INSERT INTO notices(channel, version, lang, text, legal, created_at, created_by) "
    "VALUES (?, 1, ?, ?, ?, '2018-07-13T00:00:00.000000Z', 'ordinance 308/18')"
)


def steps():
    return [
        (_INSERT, ("chat", "pl", CHAT_PL, 1)),
        (_INSERT, ("chat", "en", CHAT_EN, 0)),
        (_INSERT, ("phone", "pl", PHONE_PL, 1)),
        (_INSERT, ("phone", "en", PHONE_EN, 0)),
    ]
