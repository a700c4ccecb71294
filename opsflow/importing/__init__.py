"""Importing an OpsWorks stack (from a CloudFormation template or saved describe-* output)
into a stack file: pure decisions only; reading files and the CLI are in client/importers/.
"""
