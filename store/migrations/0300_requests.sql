-- Requests (§4, GDPR Art. 15): the §4.7 eligibility verdict kept with the request, the export of a
-- copy request, and an index for the register's yearly numbering.
ALTER TABLE access_requests ADD COLUMN ineligible_reason TEXT;
ALTER TABLE access_requests ADD COLUMN exported_at TEXT;
ALTER TABLE access_requests ADD COLUMN export_path TEXT;
ALTER TABLE access_requests ADD COLUMN updated_at TEXT;
CREATE INDEX request_conversations_conversation ON request_conversations(conversation_id);
CREATE INDEX holds_request ON holds(request_id) WHERE request_id IS NOT NULL;
