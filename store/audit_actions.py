"""Audit codes in words (the audit viewer, `cim audit list`, the supervision report): code -> label tables for the
action, the outcome and the target kind, the code itself for one a table does not know. Filters keep working on the
codes, and --json output keeps them."""

from __future__ import annotations

from .i18n import N_, translator, current_language

#: Every action the store audits, in English source words (translated into the reader's language when shown).
ACTION_LABELS: dict[str, str] = {
    "login": N_("sign-in"),
    "archive.search": N_("archive: search"),
    "archive.view": N_("archive: conversation details"),
    "archive.open_recording": N_("archive: recording heard"),
    "archive.open_transcript": N_("archive: transcript read"),
    "archive.integrity_check": N_("archive: integrity check"),
    "archive.levels": N_("archive: recording levels"),
    "audit.read": N_("audit log: read"),
    "audit.key": N_("audit log: key"),
    "audit.key_rotated": N_("audit log: key rotated"),
    "audit.restore_acknowledged": N_("audit log: restore acknowledged"),
    "callbacks.close": N_("callback: closed"),
    "callbacks.list": N_("callbacks: list"),
    "callbacks.take": N_("callback: taken"),
    "calls.annotate": N_("call: note"),
    "calls.ingest": N_("calls: records imported"),
    "calls.ingest_queue_log": N_("calls: queue log imported"),
    "calls.recording_ingest": N_("calls: recording imported"),
    "calls.route": N_("calls: route set"),
    "calls.route_removed": N_("calls: route removed"),
    "canned.add": N_("canned response: added"),
    "canned.delete": N_("canned response: deleted"),
    "canned.list": N_("canned responses: list"),
    "canned.update": N_("canned response: changed"),
    "chat.accept": N_("chat: taken"),
    "chat.close": N_("chat: closed"),
    "chat.list": N_("chats: list"),
    "chat.read": N_("chat: read"),
    "chat.requeue": N_("chat: back to the queue"),
    "chat.send": N_("chat: message sent"),
    "chat.transfer": N_("chat: handed over"),
    "chat.typing": N_("chat: typing"),
    "chat.assign": N_("chat: assigned"),
    "chat.decline": N_("chat: declined"),
    "chat.monitor": N_("chat: watched live"),
    "chat.unmonitor": N_("chat: watching ended"),
    "chat.whisper": N_("chat: whisper"),
    "chat.take_over": N_("chat: taken over"),
    "chat.notes": N_("chat: staff notes read"),
    "chat.supervision": N_("chat: supervision"),
    "chat.rated": N_("chat: rated"),
    "chat.consultant_event": N_("chat: consultant event"),
    "keys.encrypt_existing": N_("keys: existing content encrypted"),
    "keys.rotate_master": N_("keys: master key rotated"),
    "requests.receipt": N_("request: chat receipt checked"),
    "staff.max_chats": N_("account: chats at once"),
    "staff.skills": N_("account: topics handled"),
    "topic.add": N_("topic: added"),
    "topic.seed": N_("topics: defaults set"),
    "topic.update": N_("topic: changed"),
    "department.add": N_("department: added"),
    "listen.audio": N_("listening link: playback"),
    "listen.link_create": N_("listening link: created"),
    "listen.link_revoke": N_("listening link: revoked"),
    "listen.page": N_("listening link: page opened"),
    "notice.add": N_("notice: new version"),
    "notice.declined": N_("notice: declined"),
    "notice.export_phone": N_("notice: phone version exported"),
    "reports.service": N_("service report"),
    "reports.view": N_("supervision report"),
    "requests.candidates": N_("request: candidate conversations"),
    "requests.close": N_("request: closed"),
    "requests.export": N_("request: copy exported"),
    "requests.export_cancel": N_("request: copy cancelled"),
    "requests.export_confirm": N_("request: copy confirmed"),
    "requests.export_csv": N_("request register exported"),
    "requests.export_prepare": N_("request: copy prepared"),
    "requests.extend": N_("request: deadline extended"),
    "requests.grant": N_("request: granted"),
    "requests.letter": N_("request: letter"),
    "requests.link": N_("request: conversation linked"),
    "requests.list": N_("requests: list"),
    "requests.opinion_department": N_("request: department opinion"),
    "requests.opinion_dpo": N_("request: DPO opinion"),
    "requests.refuse": N_("request: refused"),
    "requests.register": N_("request: registered"),
    "requests.session_end": N_("session: ended"),
    "requests.session_playback": N_("session: playback"),
    "requests.session_record": N_("session: record signed"),
    "requests.session_start": N_("session: started"),
    "requests.unlink": N_("request: conversation unlinked"),
    "requests.view": N_("request: viewed"),
    "requests.withdraw": N_("request: withdrawn"),
    "retention.backup": N_("backup"),
    "retention.fsck": N_("integrity check of the store"),
    "retention.hold_released": N_("hold: released"),
    "retention.hold_set": N_("hold: set"),
    "retention.holds_list": N_("holds: list"),
    "retention.preview": N_("purge: preview"),
    "retention.purge": N_("purge"),
    "retention.purge_recovered": N_("purge: recovered"),
    "retention.purge_scrub": N_("purge: scrub"),
    "retention.purge_started": N_("purge: started"),
    "retention.runs": N_("purges: list"),
    "staff.add": N_("account: added"),
    "staff.directory_removed": N_("account: removed from the directory"),
    "staff.disable": N_("account: disabled"),
    "staff.enable": N_("account: enabled"),
    "staff.display_name": N_("account: name shown to residents"),
    "staff.extensions": N_("account: extensions"),
    "staff.password": N_("account: password"),
    "staff.roles": N_("account: roles"),
    "staff.second_factor_enrolled": N_("account: second factor set up"),
    "staff.second_factor_reset": N_("account: second factor removed"),
    "staff.second_factor_started": N_("account: second factor started"),
    "staff.signature": N_("account: letter signature"),
    "staff.verify_sign_in": N_("account: sign-in checked"),
    "traffic.queue_pause": N_("queue: pause"),
}


def action_label(action: str, lang: str | None = None) -> str:
    """The action in words in `lang` (default: the staff language); an unknown code is shown as it is."""
    label = ACTION_LABELS.get(action)
    if label is None:
        return action
    return translator(lang or current_language()).gettext(label)


#: Every outcome an audit entry is written with (tests/test_audit_labels.py checks the store writes no other).
OUTCOME_LABELS: dict[str, str] = {
    "ok": N_("ok"),
    "refused": N_("refused"),
    "failed": N_("failed"),
}

#: Every kind of target an audit entry names (tests/test_audit_labels.py checks the store writes no other).
TARGET_KIND_LABELS: dict[str, str] = {
    "archive": N_("archive"),
    "audit_entry": N_("audit entry"),
    "audit_key": N_("audit key"),
    "call": N_("call"),
    "call_route": N_("number route"),
    "callback": N_("callback"),
    "canned": N_("canned response"),
    "cdr": N_("call records"),
    "conversation": N_("conversation"),
    "department": N_("department"),
    "hold": N_("hold"),
    "letter": N_("letter"),
    "listen_link": N_("listening link"),
    "notice": N_("notice"),
    "purge_run": N_("purge run"),
    "request": N_("request"),
    "staff": N_("account"),
    "topic": N_("topic"),
}


def _label(table: dict[str, str], code: str, lang: str | None) -> str:
    label = table.get(code)
    if label is None:
        return code
    return translator(lang or current_language()).gettext(label)


def outcome_label(outcome: str, lang: str | None = None) -> str:
    """The outcome in words in `lang` (default: the staff language); an unknown code is shown as it is."""
    return _label(OUTCOME_LABELS, outcome, lang)


def target_kind_label(kind: str, lang: str | None = None) -> str:
    """The target's kind in words in `lang` (default: the staff language); an unknown code is shown as it is."""
    return _label(TARGET_KIND_LABELS, kind, lang)
