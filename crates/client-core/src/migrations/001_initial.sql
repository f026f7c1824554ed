-- Conversations as this user sees them; `target` is `@peer` or the group name.
CREATE TABLE conversations (
    id     INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    info   TEXT NOT NULL -- ConversationInfo as JSON
);
CREATE INDEX conversations_by_target ON conversations(target);

-- Messages keyed by the server's id, so a re-delivery is an upsert, never a duplicate.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    sender          TEXT NOT NULL,
    text            TEXT NOT NULL,
    sent_at         TEXT NOT NULL,
    client_id       TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);

-- Small settings: the resume cursor and the identity (user@server) the cache belongs to.
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Messages accepted from the user but not yet acknowledged by the server.
CREATE TABLE outbox (
    client_id       TEXT PRIMARY KEY,
    target          TEXT NOT NULL,
    conversation_id INTEGER,
    text            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
