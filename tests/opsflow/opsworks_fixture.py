"""A stack as OpsWorks users had them, for the golden tests of the documents recipes see
(opsflow.attributes, opsflow.databags): two layers (one behind a load balancer), three
instances (one stopped), two apps (git with domains, SSL, a secure environment value and an
RDS database; an archive), two users (one on every layer, one on `db` only).

Secure values carry fixed ciphertexts (sealing is randomised): the documents only carry
them, the runner reveals them (tested in tests/activities/recipes)."""

from __future__ import annotations

import base64
import json
import os
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.messages import InstanceView, RdsInfo
from opsflow.spec import Provider, StackSpec
from opsflow.status import InstanceStatus

GOLDEN = Path(__file__).parent / "golden"
# Set to regenerate the golden files from the code (then read the diff before committing).
REGENERATE = "OPSFLOW_REGENERATE_GOLDEN"
# The OpsWorks reference shapes (/work/shared/opsworks), beside the repository.
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "opsworks"

CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBfixturecertificate==\n-----END CERTIFICATE-----"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIBfixturechain==\n-----END CERTIFICATE-----"
TARGET_GROUP = (
    "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/shop-web/0123456789abcdef"
)
SENT_AT = datetime(2024, 5, 1, 12, 30, 0, tzinfo=UTC)


def sealed(name: str) -> dict[str, Any]:
    return {"secure": True, "ciphertext": f"v2.fixture-{name}"}


def ssh_key(kind: str = "ssh-ed25519", comment: str = "alice@example") -> str:
    blob = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", 32) + bytes(32)
    return f"{kind} {base64.b64encode(blob).decode()} {comment}"


SPEC = StackSpec.model_validate(
    {
        "name": "shop",
        "provider": "ec2",
        "region": "us-west-2",
        "configuration_manager": "chef",
        "cookbooks": {"git": "https://example.com/cookbooks.git", "revision": "v3"},
        "custom_json": {"shop": {"greeting": "hello"}},
        "layers": [
            {
                "name": "app",
                "load_balancer": TARGET_GROUP,
                "custom_json": {"shop": {"greeting": "hi from app"}},
                "volumes": [{"size": 10, "mount_point": "/srv/data"}],
                "instances": [{"hostname": "app1"}, {"hostname": "app2"}],
            },
            {"name": "db", "instances": [{"hostname": "db1"}]},
        ],
        "apps": [
            {
                "name": "shop",
                "layers": ["app"],
                "type": "php",
                "source": {"git": "https://example.com/shop.git", "revision": "main"},
                "environment": {"GREETING": "hello", "API_KEY": sealed("api-key")},
                "domains": ["shop.example.com", "www.shop.example.com"],
                "ssl": {"certificate": CERTIFICATE, "chain": CHAIN, "key": sealed("ssl-key")},
                "document_root": "public",
                "attributes": {"RailsEnv": None, "AutoBundleOnDeploy": True},
                "data_source": "orders",
            },
            {
                "name": "reports",
                "layers": ["db"],
                "source": {"archive": "https://example.com/reports.tar.gz"},
            },
        ],
        "rds": [
            {
                "name": "orders",
                "identifier": "orders-db",
                "username": "shop",
                "password": sealed("db-password"),
                "database_name": "orders",
            }
        ],
        "users": [
            {"name": "alice", "ssh_public_key": ssh_key(), "sudo": True, "uid": 2001},
            {"name": "bob", "ssh_public_key": ssh_key(comment="bob"), "layers": ["db"]},
        ],
    }
)

RDS = {
    "orders": RdsInfo(
        identifier="orders-db",
        address="orders-db.abc.us-west-2.rds.amazonaws.com",
        port=3306,
        engine="mysql",
        database_name="orders",
        arn="arn:aws:rds:us-west-2:123456789012:db:orders-db",
    )
}


def ec2_view(hostname: str, layers: list[str], status: InstanceStatus, number: int) -> InstanceView:
    return InstanceView(
        hostname=hostname,
        layers=layers,
        status=status,
        provider=Provider.EC2,
        root="/",
        private_ip=f"10.0.0.{number}",
        ec2_instance_id=f"i-0000000000000000{number}",
        instance_type="t3.small",
        availability_zone="us-west-2a",
        region="us-west-2",
        public_ip=f"203.0.113.{number}",
        public_dns_name=f"ec2-203-0-113-{number}.us-west-2.compute.amazonaws.com",
        private_dns_name=f"ip-10-0-0-{number}.us-west-2.compute.internal",
        architecture="x86_64",
        ami_id="ami-0123456789abcdef0",
        os="Debian GNU/Linux 12 (bookworm)",
        subnet_id="subnet-0123",
        root_device_type="ebs",
        created_at=datetime(2024, 5, 1, 10, 0, number, tzinfo=UTC),
        booted_at=datetime(2024, 5, 1, 10, 5, number, tzinfo=UTC),
        updated_at=datetime(2024, 5, 1, 11, 0, 0, tzinfo=UTC),
    )


APP1 = ec2_view("app1", ["app"], InstanceStatus.ONLINE, 1)
APP2 = ec2_view("app2", ["app"], InstanceStatus.STOPPED, 2)
DB1 = ec2_view("db1", ["db"], InstanceStatus.ONLINE, 3)
INSTANCES = [APP1, APP2, DB1]


def check_golden(name: str, document: Any) -> None:
    """`document` equals tests/opsflow/golden/NAME (rewritten with OPSFLOW_REGENERATE_GOLDEN)."""
    path = GOLDEN / name
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if os.environ.get(REGENERATE):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with {REGENERATE}=1 once"
    assert json.loads(path.read_text()) == json.loads(text)
