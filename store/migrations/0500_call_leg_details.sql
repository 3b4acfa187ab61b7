-- Call legs keep what the PBX wrote for each CDR record, so a call is recomputed from all its legs
-- (queue member attempts, parallel dial, transfers, ForkCDR) whatever the order they arrive in.
-- Rows registered before this migration keep NULLs: their call's row stands in for them.

ALTER TABLE call_legs ADD COLUMN linkedid TEXT;
ALTER TABLE call_legs ADD COLUMN sequence TEXT;
ALTER TABLE call_legs ADD COLUMN start_at TEXT;
ALTER TABLE call_legs ADD COLUMN answer_at TEXT;
ALTER TABLE call_legs ADD COLUMN end_at TEXT;
ALTER TABLE call_legs ADD COLUMN duration_s INTEGER;
ALTER TABLE call_legs ADD COLUMN billsec_s INTEGER;
ALTER TABLE call_legs ADD COLUMN src TEXT;
ALTER TABLE call_legs ADD COLUMN dst TEXT;
ALTER TABLE call_legs ADD COLUMN clid TEXT;
ALTER TABLE call_legs ADD COLUMN channel TEXT;
ALTER TABLE call_legs ADD COLUMN dstchannel TEXT;
ALTER TABLE call_legs ADD COLUMN dcontext TEXT;
ALTER TABLE call_legs ADD COLUMN lastapp TEXT;
ALTER TABLE call_legs ADD COLUMN disposition TEXT;
ALTER TABLE call_legs ADD COLUMN userfield TEXT;
ALTER TABLE call_legs ADD COLUMN did TEXT;
ALTER TABLE call_legs ADD COLUMN recordingfile TEXT;
CREATE INDEX call_legs_linkedid ON call_legs(linkedid);
CREATE INDEX call_legs_channel ON call_legs(channel);
CREATE INDEX call_legs_dstchannel ON call_legs(dstchannel);
CREATE INDEX call_legs_start ON call_legs(start_at);
