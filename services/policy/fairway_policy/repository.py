"""Policy's SQL. The `policies` table exists (migrations/001_policies.sql); reading and writing
it arrives with policy CRUD (issue 8). Evaluation stays pure: stored policies will be loaded here
and handed to `domain.evaluate` as plain values."""
