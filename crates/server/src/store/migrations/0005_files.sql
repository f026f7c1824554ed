-- File transfer. `blobs` describes stored content, one row per distinct BLAKE3 hash (the
-- bytes live in the blob store under that hash). `attachments` are uploads: a name and
-- an uploader for some content. `message_attachments` says which messages carry which
-- uploads; it is what download authorization checks. `messages.attachments` keeps the
-- attachment objects as JSON so that reading history needs no join.
CREATE TABLE blobs (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    mime       TEXT NOT NULL,
    width      INTEGER,
    height     INTEGER,
    thumbnail  BLOB,
    created_at INTEGER NOT NULL
);

CREATE TABLE attachments (
    id          TEXT PRIMARY KEY,
    uploader_id INTEGER NOT NULL REFERENCES users(id),
    hash        TEXT NOT NULL REFERENCES blobs(hash),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX attachments_by_hash ON attachments(hash);

CREATE TABLE message_attachments (
    message_id    INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    attachment_id TEXT NOT NULL REFERENCES attachments(id),
    position      INTEGER NOT NULL,
    PRIMARY KEY (message_id, position)
);
CREATE INDEX message_attachments_by_attachment ON message_attachments(attachment_id);

ALTER TABLE messages ADD COLUMN attachments TEXT;
