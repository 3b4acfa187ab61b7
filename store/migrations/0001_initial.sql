-- The whole domain of DESIGN.md §4, designed once. Later migrations add, never rewrite.
-- Times are UTC ISO 8601 text ('YYYY-MM-DDTHH:MM:SS.ffffffZ'), which sorts correctly as text.

CREATE TABLE departments (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL
);

CREATE TABLE staff (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    full_name       TEXT NOT NULL DEFAULT '',
    password_hash   TEXT NOT NULL,
    department_id   INTEGER REFERENCES departments(id),
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      TEXT NOT NULL
);

CREATE TABLE staff_roles (
    staff_id    INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('consultant', 'designated', 'cim_manager', 'it_admin',
                                              'boi_director', 'dpo', 'department_head', 'secretary')),
    PRIMARY KEY (staff_id, role)
);

-- PBX extension <-> consultant mapping used by call ingestion.
CREATE TABLE staff_extensions (
    extension   TEXT PRIMARY KEY,
    staff_id    INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE
);

-- Failed logins by the lower-cased name tried (known or not, so lockout reveals nothing).
CREATE TABLE login_failures (
    id          INTEGER PRIMARY KEY,
    name_key    TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX login_failures_name_at ON login_failures(name_key, at);

CREATE TABLE sessions (
    token_hash      TEXT PRIMARY KEY,           -- SHA-256 of the token; the token itself is never stored
    staff_id        INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    revoked_at      TEXT
);

CREATE TABLE notices (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL CHECK (channel IN ('chat', 'phone')),
    version     INTEGER NOT NULL,
    lang        TEXT NOT NULL,
    text        TEXT NOT NULL,
    legal       INTEGER NOT NULL DEFAULT 0,     -- 1 for the legally binding (Polish) text
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (channel, version, lang)
);

-- A chat or a call. One table so the archive searches one set of indexes.
CREATE TABLE conversations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: audit entries name ids of purged conversations
    channel             TEXT NOT NULL CHECK (channel IN ('chat', 'call')),
    status              TEXT NOT NULL CHECK (status IN ('queued', 'active', 'closed', 'ended')),
    created_at          TEXT NOT NULL,          -- the moment the chat or call began: the §6 clock
    ended_at            TEXT,
    purge_after         TEXT NOT NULL,          -- created_at + retention, fixed at creation
    department_id       INTEGER REFERENCES departments(id),
    consultant_id       INTEGER REFERENCES staff(id),
    -- calls
    direction           TEXT CHECK (direction IN ('incoming', 'outgoing', 'internal')),
    resident_number     TEXT,                   -- normalised (+48...) when identifiable, raw otherwise
    number_identifiable INTEGER CHECK (number_identifiable IN (0, 1)),
    extension           TEXT,
    pbx_uniqueid        TEXT UNIQUE,
    pbx_linkedid        TEXT,
    disposition         TEXT,
    duration_s          INTEGER,
    billsec_s           INTEGER,
    notice_played       INTEGER CHECK (notice_played IN (0, 1)),
    full_info_requested INTEGER CHECK (full_info_requested IN (0, 1)),
    -- chats
    lang                TEXT,
    notice_id           INTEGER REFERENCES notices(id),
    notice_accepted_at  TEXT,
    resume_token_hash   TEXT UNIQUE,
    close_category      TEXT,
    next_seq            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX conversations_created ON conversations(created_at);
CREATE INDEX conversations_number_created ON conversations(resident_number, created_at);
CREATE INDEX conversations_consultant_created ON conversations(consultant_id, created_at);
CREATE INDEX conversations_purge ON conversations(purge_after) WHERE status IN ('closed', 'ended');
CREATE INDEX conversations_linkedid ON conversations(pbx_linkedid);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    sender          TEXT NOT NULL CHECK (sender IN ('resident', 'consultant', 'system')),
    staff_id        INTEGER REFERENCES staff(id),
    text            TEXT NOT NULL,
    at              TEXT NOT NULL,
    client_msg_id   TEXT,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_msg_id)
);

CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    pbx_uniqueid    TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL UNIQUE,       -- relative to the managed recordings folder
    sha256          TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    duration_s      REAL,
    format          TEXT NOT NULL,
    is_empty        INTEGER NOT NULL DEFAULT 0 CHECK (is_empty IN (0, 1)),
    imported_at     TEXT NOT NULL
);
CREATE INDEX recordings_conversation ON recordings(conversation_id);

-- Anonymous count of declined chat notices: nothing about the resident.
CREATE TABLE declined_notices (
    day     TEXT PRIMARY KEY,
    count   INTEGER NOT NULL
);

CREATE TABLE canned_responses (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    text        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  INTEGER REFERENCES staff(id)
);

-- §4 access requests and GDPR Art. 15 copy requests.
CREATE TABLE access_requests (
    id                  INTEGER PRIMARY KEY,
    number              TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL CHECK (kind IN ('access', 'copy')),
    state               TEXT NOT NULL,
    received_on         TEXT NOT NULL,          -- date
    due_on              TEXT NOT NULL,          -- date: received + 1 month (GDPR 12(3))
    extended_until      TEXT,
    extension_reason    TEXT,
    requester_name      TEXT NOT NULL,
    requester_address   TEXT NOT NULL,
    requester_email     TEXT,
    requester_phone     TEXT,
    channel             TEXT NOT NULL CHECK (channel IN ('call', 'chat')),
    conversation_hint   TEXT NOT NULL DEFAULT '{}',   -- JSON: what identifies the conversation
    justification       TEXT NOT NULL DEFAULT '',
    asked               TEXT NOT NULL,          -- listen / read / copy
    delivery            TEXT NOT NULL DEFAULT 'post',
    registered_by       INTEGER NOT NULL REFERENCES staff(id),
    registered_at       TEXT NOT NULL,
    decision            TEXT CHECK (decision IN ('granted', 'refused')),
    decision_reasons    TEXT,
    decided_by          INTEGER REFERENCES staff(id),
    decided_at          TEXT,
    session_at          TEXT,
    session_place       TEXT,
    session_started_at  TEXT,
    session_ended_at    TEXT,
    session_notes       TEXT,
    closed_at           TEXT,
    withdrawn_at        TEXT
);
CREATE INDEX access_requests_state_due ON access_requests(state, due_on);

CREATE TABLE request_conversations (
    request_id      INTEGER NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL,           -- no FK: the link outlives nothing, holds keep it alive
    linked_by       INTEGER NOT NULL REFERENCES staff(id),
    linked_at       TEXT NOT NULL,
    PRIMARY KEY (request_id, conversation_id)
);

CREATE TABLE request_opinions (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('dpo', 'department')),
    staff_id    INTEGER NOT NULL REFERENCES staff(id),
    verdict     TEXT NOT NULL CHECK (verdict IN ('favourable', 'unfavourable')),
    text        TEXT NOT NULL,
    at          TEXT NOT NULL,
    UNIQUE (request_id, kind)
);

CREATE TABLE request_attendees (
    request_id  INTEGER NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
    staff_id    INTEGER NOT NULL REFERENCES staff(id),
    present     INTEGER CHECK (present IN (0, 1)),
    PRIMARY KEY (request_id, staff_id)
);

CREATE TABLE letters (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,                  -- grant / refusal / extension / ...
    path        TEXT NOT NULL UNIQUE,           -- relative to the letters folder
    sha256      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  INTEGER NOT NULL REFERENCES staff(id)
);

-- Exceptions to retention ("unless other law requires otherwise", §6).
CREATE TABLE holds (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    legal_basis     TEXT NOT NULL,
    case_reference  TEXT NOT NULL,
    request_id      INTEGER REFERENCES access_requests(id),  -- automatic hold of an open request
    set_by          INTEGER REFERENCES staff(id),
    set_at          TEXT NOT NULL,
    review_on       TEXT,
    released_by     INTEGER REFERENCES staff(id),
    released_at     TEXT
);
CREATE INDEX holds_open ON holds(conversation_id) WHERE released_at IS NULL;

-- Each purge run: counts, never content.
CREATE TABLE purge_runs (
    id              INTEGER PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    cutoff          TEXT NOT NULL,
    dry_run         INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    started_by      TEXT NOT NULL,
    calls           INTEGER NOT NULL DEFAULT 0,
    chats           INTEGER NOT NULL DEFAULT 0,
    files           INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    held            INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed'))
);

-- Files whose rows are gone but which may still be on disk (a purge interrupted between the
-- commit and the unlink finishes them on the next run).
CREATE TABLE pending_unlinks (
    path        TEXT PRIMARY KEY,
    purge_run   INTEGER REFERENCES purge_runs(id)
);

-- Append-only, hash-chained audit log.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor_id    INTEGER,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    target_kind TEXT,
    target_id   TEXT,
    purpose     TEXT,
    request_id  INTEGER,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_actor_at ON audit(actor_id, at);
CREATE INDEX audit_action_at ON audit(action, at);
CREATE INDEX audit_target ON audit(target_kind, target_id);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
