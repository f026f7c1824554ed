-- Per (user, conversation) markers. Both only move forward (UPDATE ... MAX(old, new)).
-- delivered_seq: a device of the user has every message up to it (delivery receipts).
-- read_seq: the user read everything up to it (read receipts, unread counts).
CREATE TABLE markers (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    user_id         INTEGER NOT NULL REFERENCES users(id),
    delivered_seq   INTEGER NOT NULL DEFAULT 0,
    read_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;

-- Muted conversations per user; muted_until NULL means until unmuted.
CREATE TABLE mutes (
    user_id         INTEGER NOT NULL REFERENCES users(id),
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    muted_until     INTEGER,
    PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;

-- Per-user settings; a missing row means the defaults.
CREATE TABLE user_settings (
    user_id        INTEGER PRIMARY KEY REFERENCES users(id),
    read_receipts  INTEGER NOT NULL DEFAULT 1,
    do_not_disturb INTEGER NOT NULL DEFAULT 0
);
