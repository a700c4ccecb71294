"""Reading what `opsflow import` turns into a stack file: CloudFormation templates and
saved describe-* output (file I/O; the mapping itself is pure, in opsflow/importing/)."""
