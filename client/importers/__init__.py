"""Importing an OpsWorks stack into a stack file: reading CloudFormation templates and saved
`aws opsworks describe-*` output (file I/O here; the decisions are in opsflow/importing/)."""
