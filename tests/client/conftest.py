"""Fixtures for the client's tests."""

from __future__ import annotations

# The real moto server of tests/aws, for an S3 artifact store the CLI reads run logs from.
from tests.aws.conftest import aws_env, fault_proxy, moto_reset, moto_server

__all__ = ["aws_env", "fault_proxy", "moto_reset", "moto_server"]
