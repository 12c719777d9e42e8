-- Failed logins, kept here rather than in one API process so that every replica of the
-- submission service counts the same attempts. An attempt is written before its password is
-- verified (and forgotten if it succeeds), so attempts sent at once count against each other.
CREATE TABLE login_failures (
    id        bigserial   PRIMARY KEY,
    name      text        NOT NULL,
    client    text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_pair ON login_failures (name, client, failed_at);
CREATE INDEX login_failures_client ON login_failures (client, failed_at);
CREATE INDEX login_failures_age ON login_failures (failed_at);
-- A client past the cap of failures across names gets one attempt per turn: the next free one.
CREATE TABLE login_turns (
    client  text        PRIMARY KEY,
    next_at timestamptz NOT NULL
);
