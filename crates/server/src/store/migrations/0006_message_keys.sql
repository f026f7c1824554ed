-- A message's idempotency key becomes (client_id, sender_id), where it was
-- (sender_id, client_id). Client ids from our clients are UUIDv7, ordered by time, so new
-- keys now land at the end of one index instead of in every sender's own part of it: a
-- commit of many senders' messages rewrites a page or two of this index instead of one
-- page per sender. A UNIQUE table constraint cannot be dropped, so the table is rebuilt.
-- (The store runs migrations with foreign keys off and checks them afterwards.)
CREATE TABLE messages_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq             INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL REFERENCES users(id),
    client_id       TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    event           TEXT,
    attachments     TEXT,
    UNIQUE (conversation_id, seq)
);
INSERT INTO messages_new (id, conversation_id, seq, sender_id, client_id, text, sent_at, event, attachments)
    SELECT id, conversation_id, seq, sender_id, client_id, text, sent_at, event, attachments
    FROM messages ORDER BY id;
-- Ids are never reused: carry over the highest id ever handed out, even if that message
-- has since been deleted.
DELETE FROM sqlite_sequence WHERE name = 'messages_new';
INSERT INTO sqlite_sequence (name, seq) VALUES ('messages_new', MAX(
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
    COALESCE((SELECT MAX(id) FROM messages_new), 0)));
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_by_conversation_id ON messages(conversation_id, id);
CREATE UNIQUE INDEX messages_by_client_id ON messages(client_id, sender_id);
