-- Users belong to groups; an access rule whose subject is a group covers its members.
ALTER TABLE users ADD COLUMN groups jsonb NOT NULL DEFAULT '[]'::jsonb;
