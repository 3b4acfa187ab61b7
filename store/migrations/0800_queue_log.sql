-- Phone traffic (issue [traffic]): Asterisk queue_log facts and the purge-proof service figures.

-- Every queue_log line registered, by the SHA-256 of its bytes: the same line again is "already present".
-- Kept until the line's own purge_after; a line older than that is never registered again (§6).
CREATE TABLE queue_log_lines (
    digest      TEXT PRIMARY KEY,
    imported_at TEXT NOT NULL,
    purge_after TEXT NOT NULL
);
CREATE INDEX queue_log_lines_purge ON queue_log_lines(purge_after);

-- One caller's stay in a queue: ENTERQUEUE up to CONNECT/ABANDON/EXIT* and COMPLETE*/TRANSFER.
-- callid is the caller channel's uniqueid, so the stay links to the call's CDR (call_legs.uniqueid).
CREATE TABLE queue_calls (
    id              INTEGER PRIMARY KEY,
    callid          TEXT NOT NULL,
    queue           TEXT NOT NULL,
    entered_at      TEXT NOT NULL,
    caller          TEXT,                   -- normalised (+48...) when identifiable (§4.7), else NULL
    position        INTEGER,
    outcome         TEXT NOT NULL DEFAULT 'waiting'
                    CHECK (outcome IN ('waiting', 'answered', 'abandoned', 'timeout', 'exitkey', 'exitempty')),
    agent           TEXT,                   -- the queue member who answered (membername)
    extension       TEXT,
    consultant_id   INTEGER REFERENCES staff(id) ON DELETE SET NULL,
    wait_s          INTEGER,                -- until the answer, or until the caller left
    talk_s          INTEGER,
    ended_at        TEXT,
    ended_by        TEXT CHECK (ended_by IN ('caller', 'agent', 'transfer')),
    ring_no_answer  INTEGER NOT NULL DEFAULT 0,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
    purge_after     TEXT NOT NULL,
    UNIQUE (callid, queue, entered_at)
);
CREATE INDEX queue_calls_callid ON queue_calls(callid);
CREATE INDEX queue_calls_entered ON queue_calls(entered_at);
CREATE INDEX queue_calls_unlinked ON queue_calls(callid) WHERE conversation_id IS NULL;
CREATE INDEX queue_calls_conversation ON queue_calls(conversation_id);
CREATE INDEX queue_calls_purge ON queue_calls(purge_after);

-- Queue members' own events (PAUSE/UNPAUSE with reason, ADDMEMBER/REMOVEMEMBER, agent log-in/off).
CREATE TABLE queue_member_events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    queue       TEXT NOT NULL,
    agent       TEXT NOT NULL,
    event       TEXT NOT NULL,
    reason      TEXT,
    purge_after TEXT NOT NULL
);
CREATE INDEX queue_member_events_at ON queue_member_events(at);

-- Service figures of contacts already purged (§6), folded in by the purge just before their rows
-- go: per office day and hour, channel, queue, consultant and topic. Counts and durations only,
-- no number, no text, no link to a conversation; waits/handle times as JSON arrays of whole seconds
-- so averages, percentiles and a service level with any threshold can still be computed.
CREATE TABLE service_daily (
    day             TEXT NOT NULL,          -- office-local date YYYY-MM-DD
    hour            INTEGER NOT NULL,       -- office-local hour 0..23
    channel         TEXT NOT NULL CHECK (channel IN ('call', 'chat')),
    queue           TEXT NOT NULL,          -- '' for chats and calls outside a queue
    consultant_id   INTEGER,                -- no FK: the figure outlives an account
    consultant      TEXT NOT NULL,          -- name at aggregation time, '' when none
    topic           TEXT NOT NULL,          -- close/call category, '' when none
    offered         INTEGER NOT NULL DEFAULT 0,
    answered        INTEGER NOT NULL DEFAULT 0,
    abandoned       INTEGER NOT NULL DEFAULT 0,
    unanswered_other INTEGER NOT NULL DEFAULT 0,
    answered_waits  TEXT NOT NULL DEFAULT '[]',
    abandoned_waits TEXT NOT NULL DEFAULT '[]',
    handle_times    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (day, hour, channel, queue, consultant, topic)
);
