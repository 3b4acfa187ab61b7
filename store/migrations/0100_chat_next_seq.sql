-- Chats: every stored transcript line moves its conversation's next_seq past it, whoever inserts it,
-- so the chat writer needs no separate UPDATE per batch and next_seq can never fall behind.
CREATE TRIGGER messages_advance_next_seq AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET next_seq = NEW.seq + 1
    WHERE id = NEW.conversation_id AND next_seq <= NEW.seq;
END;
