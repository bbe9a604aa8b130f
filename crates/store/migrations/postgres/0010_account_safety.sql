-- When the account's password last changed or its second factor was removed (Unix ms; 0:
-- never): withdrawals and internal transfers wait 24 hours after it, so a thief who changed
-- them cannot empty the account before the owner, emailed at once, can act.
ALTER TABLE users ADD COLUMN security_changed_at BIGINT NOT NULL DEFAULT 0;

-- A sign-up's verification token carries the password of that sign-up: a second sign-up on an
-- address nobody has verified yet gets its own link, and whichever link is used sets its own
-- password (so a stranger who signed up first cannot keep the owner out, or in with his
-- password). NULL for every other token.
ALTER TABLE email_tokens ADD COLUMN password_hash TEXT;

-- Security notices go out before bulk mail: 0 (security), 1 (links asked for), 2 (news).
ALTER TABLE outbox ADD COLUMN priority BIGINT NOT NULL DEFAULT 1;
CREATE INDEX outbox_priority ON outbox (priority, id);
