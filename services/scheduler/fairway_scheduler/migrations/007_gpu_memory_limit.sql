-- A memory fraction's limit: the bind decision gives it as a portion of the device it lands on.
ALTER TABLE workloads ADD COLUMN gpu_memory_limit_mib integer;
