-- Files attached to messages (JSON arrays of attachment objects), and the upload ids an
-- outbox entry will attach (JSON array of strings).
ALTER TABLE messages ADD COLUMN attachments TEXT;
ALTER TABLE outbox ADD COLUMN attachments TEXT;
