"""boto3 clients as every AWS activity makes them: the standard configuration (profile,
endpoint, credentials from the environment), the given region, standard retries (so
throttling backs off before an activity sees it)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

MAX_ATTEMPTS = 5


def client(service: str, region: str) -> Any:
    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS})
    return boto3.client(service, config=config)
