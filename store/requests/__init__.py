"""Residents' requests: access to a recording or chat (§4 of the ordinance) and GDPR Art. 15 copies.

The package, by concern:

- model.py: kinds, states (an enum), delivery routes, and the records read back (AccessRequest, ...);
- lifecycle.py: every move (from-states, to-state), who may take it, its guards; `allowed_actions`;
- text.py: the one cleaning of free text (controls, bidi overrides, length) for every field;
- validation.py: the §4.2 annex as typed in, checked;
- matching.py: §4.7, the candidates and whether a linked call can be granted;
- letters.py, export.py: the letters' files, the register's CSV and the Art. 15 copy;
- store/sqlite/requests.py (outside the package, with the other repositories): all the SQL;
- service.py: `Requests`, which runs each step through the lifecycle and audits it with its change.

Conversations linked to an open request are held against the retention purge until the request is
closed or withdrawn.
"""

from .export import CSV_COLUMNS
from .letters import RenderedLetter
from .lifecycle import ACTIONS, KIND_STATES, MOVES, STEPS, TRANSITIONS, Facts, Refusal, allowed_actions
from .matching import mask_number
from .model import (
    ACCESS,
    ANSWER_PENDING,
    AWAITING_DECISION,
    CHANNELS,
    CLOSED,
    COPY,
    DELIVERIES,
    DELIVERY_LABELS,
    EXPORT_CONFIRMED,
    EXPORT_PREPARED,
    EXPORTED,
    GRANTED,
    HOLD_BASIS,
    JUSTIFICATION,
    KINDS,
    LEGACY_DELIVERIES,
    MAX_ADDRESS,
    MAX_EXTENSION_MONTHS,
    MAX_NAME,
    MAX_TEXT,
    NUMBER_MATCH,
    OPEN_STATES,
    OPINION_KINDS,
    REFUSED,
    REGISTERED,
    SESSION_HELD,
    SESSION_IN_PROGRESS,
    STATE_LABELS,
    VERDICTS,
    WITHDRAWN,
    AccessRequest,
    Attendee,
    Candidate,
    CopyApproval,
    ExportResult,
    Kind,
    LetterRecord,
    LinkedConversation,
    Opinion,
    RequestDetail,
    RequestInput,
    SessionMaterial,
    State,
    TranscriptLine,
)
from .service import Requests
from .text import clean_text

__all__ = [
    "ACCESS",
    "ACTIONS",
    "ANSWER_PENDING",
    "AWAITING_DECISION",
    "CHANNELS",
    "CLOSED",
    "COPY",
    "CSV_COLUMNS",
    "DELIVERIES",
    "DELIVERY_LABELS",
    "EXPORTED",
    "EXPORT_CONFIRMED",
    "EXPORT_PREPARED",
    "GRANTED",
    "HOLD_BASIS",
    "JUSTIFICATION",
    "KINDS",
    "KIND_STATES",
    "LEGACY_DELIVERIES",
    "MAX_ADDRESS",
    "MAX_EXTENSION_MONTHS",
    "MAX_NAME",
    "MAX_TEXT",
    "MOVES",
    "NUMBER_MATCH",
    "OPEN_STATES",
    "OPINION_KINDS",
    "REFUSED",
    "REGISTERED",
    "SESSION_HELD",
    "SESSION_IN_PROGRESS",
    "STATE_LABELS",
    "STEPS",
    "TRANSITIONS",
    "VERDICTS",
    "WITHDRAWN",
    "AccessRequest",
    "Attendee",
    "Candidate",
    "CopyApproval",
    "ExportResult",
    "Facts",
    "Kind",
    "LetterRecord",
    "LinkedConversation",
    "Opinion",
    "Refusal",
    "RenderedLetter",
    "RequestDetail",
    "RequestInput",
    "Requests",
    "SessionMaterial",
    "State",
    "TranscriptLine",
    "allowed_actions",
    "clean_text",
    "mask_number",
]
