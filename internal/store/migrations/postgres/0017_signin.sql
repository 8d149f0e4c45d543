-- keygate schema version 17 for PostgreSQL: people sign in. Sessions (only a
-- keyed hash of each token is kept), local passwords (argon2id), a user's
-- second factors (TOTP, WebAuthn passkeys), the single-sign-on identities
-- users are linked to, and the single-use state of sign-in ceremonies.

-- A signed-in session of the admin plane. It stands for a user (user_id),
-- or, signed in with an admin token of nobody's (the bootstrap one), for
-- that token (token_id), which is checked again on every request. It works
-- only at the admin URL it was made for (audience), until idle_until or
-- expires_at, whichever comes first, and never after revoked_at.
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    hash         BYTEA   NOT NULL UNIQUE,
    user_id      TEXT,
    token_id     TEXT,
    cap_role     TEXT    NOT NULL DEFAULT '',
    method       TEXT    NOT NULL,
    mfa          TEXT    NOT NULL DEFAULT '',
    mfa_pending  INTEGER NOT NULL DEFAULT 0,
    audience     TEXT    NOT NULL,
    client       TEXT    NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    idle_until   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_token ON sessions (token_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- A local user's password, as an argon2id PHC string (parameters and salt
-- included), never the password.
CREATE TABLE user_passwords (
    user_id TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash    TEXT    NOT NULL,
    set_at  TIMESTAMPTZ NOT NULL
);

-- A user's TOTP enrolment; the secret is in the vault (totp/user/<id>).
-- It counts as a second factor once confirmed with a first code.
CREATE TABLE user_totp (
    user_id      TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ
);

-- A user's WebAuthn passkeys: the credential id (base64url) and the
-- public credential as the WebAuthn library keeps it (JSON: public key,
-- sign count, flags). Nothing here is secret.
CREATE TABLE webauthn_credentials (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL DEFAULT '',
    credential   TEXT    NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);

CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- The OpenID provider identities (issuer, sub) users are linked to.
CREATE TABLE user_identities (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- A sign-in ceremony under way (single sign-on, a passkey registration or
-- sign-in), by a SHA-256 of its state: taken once, by any node, before
-- expires_at. data is JSON the ceremony needs (never a secret).
CREATE TABLE signin_flows (
    id         TEXT    NOT NULL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX signin_flows_expires ON signin_flows (expires_at);
