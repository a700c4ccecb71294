"""Shapes of AWS identifiers, checked before any AWS call (pure: no boto3 here)."""

from __future__ import annotations

import re

# us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-4, il-central-1 ...
REGION = re.compile(r"^(us-gov|us-iso[a-z]?|cn|[a-z]{2})-[a-z]+-\d{1,2}$")
AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
SECURITY_GROUP_ID = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
TARGET_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
# An RDS DB instance identifier (AWS allows 1-63 letters, digits and hyphens, from a letter).
RDS_IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$")
# CloudWatch: a namespace (letters, digits and . - _ / # : space, not only spaces, not
# starting with a colon), a metric name (any printable text), a statistic GetMetricData
# takes (the five plain ones, or a percentile p0-p100).
CLOUDWATCH_NAMESPACE = re.compile(r"^(?=.*[^ ])[A-Za-z0-9._/#\- ][A-Za-z0-9._/#:\- ]{0,254}$")
CLOUDWATCH_METRIC_NAME = re.compile(r"^(?=.*[^ ])[\x20-\x7e]{1,255}$")
CLOUDWATCH_STAT = re.compile(
    r"^(Average|Sum|Minimum|Maximum|SampleCount|p(100|\d{1,2}(\.\d{1,2})?))$"
)
