-- What the user asked for (stop, resume, delete): the fold drives the pods towards it.
ALTER TABLE workloads
    ADD COLUMN desired  text    NOT NULL DEFAULT 'Running',
    ADD COLUMN resuming boolean NOT NULL DEFAULT false;
