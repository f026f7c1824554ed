-- Timeline events (membership and settings changes) are rows of `messages` with this
-- JSON column set; `text` holds their description for people.
ALTER TABLE messages ADD COLUMN event TEXT;
ALTER TABLE conversations ADD COLUMN topic TEXT NOT NULL DEFAULT '';
