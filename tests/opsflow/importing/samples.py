"""OpsWorks stacks as the importers would hand them to the mapping, built by hand."""

from __future__ import annotations

from typing import Any

from opsflow.importing.model import OpsWorksStack, Resource


def resource(rid: str, **fields: Any) -> Resource:
    return Resource(id=rid, source=rid, fields=fields)


def php_sample() -> OpsWorksStack:
    """AWS's sample template (../shared/opsworks/cloudformation/php-sample-app.template.*)
    as the CloudFormation reader resolves it: the stack named after the file,
    AWS::AccountId unknown (so the two ARNs built with it are absent, and reported by the
    reader), the NoEcho MysqlRootPassword given no value (absent), `Ref: ELB` the ELB's
    logical id, values as the template writes them ('true', '10')."""
    return OpsWorksStack(
        stack=resource(
            "myStack",
            Name="php-sample-app",
            UseCustomCookbooks="true",
            CustomCookbooksSource={
                "Type": "git",
                "Url": "git://github.com/amazonwebservices/opsworks-example-cookbooks.git",
            },
        ),
        layers=[
            resource(
                "myLayer",
                StackId="myStack",
                Type="php-app",
                Shortname="php-app",
                EnableAutoHealing="true",
                AutoAssignElasticIps="false",
                AutoAssignPublicIps="true",
                Name="MyPHPApp",
                CustomRecipes={"Configure": ["phpapp::appsetup"]},
            ),
            resource(
                "DBLayer",
                StackId="myStack",
                Type="db-master",
                Shortname="db-layer",
                EnableAutoHealing="true",
                AutoAssignElasticIps="false",
                AutoAssignPublicIps="true",
                Name="MyMySQL",
                CustomRecipes={"Setup": ["phpapp::dbsetup"]},
                Attributes={"MysqlRootPasswordUbiquitous": "true"},
                VolumeConfigurations=[{"MountPoint": "/vol/mysql", "NumberOfDisks": 1, "Size": 10}],
            ),
        ],
        instances=[
            resource(
                "myAppInstance1", StackId="myStack", LayerIds=["myLayer"], InstanceType="m1.small"
            ),
            resource(
                "myAppInstance2", StackId="myStack", LayerIds=["myLayer"], InstanceType="m1.small"
            ),
            resource(
                "myDBInstance", StackId="myStack", LayerIds=["DBLayer"], InstanceType="m1.small"
            ),
        ],
        apps=[
            resource(
                "myApp",
                StackId="myStack",
                Type="php",
                Name="myapp",
                AppSource={
                    "Type": "git",
                    "Url": "git://github.com/amazonwebservices/opsworks-demo-php-simple-app.git",
                    "Revision": "version2",
                },
                Attributes={"DocumentRoot": "web"},
            )
        ],
        elb_attachments=[
            resource("ELBAttachment", ElasticLoadBalancerName="ELB", LayerId="myLayer")
        ],
    )


def public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


STACK_ID = "2f18b4cb-4de5-4429-a149-ff7da9f0d8ee"
WEB_ID = "97c1bd76-0ea4-4b5e-8d0b-9a0b4c3e0d01"
CACHE_ID = "97c1bd76-0ea4-4b5e-8d0b-9a0b4c3e0d02"
DB_ARN = "arn:aws:rds:eu-west-1:123456789012:db:shop-db"


def described(key: str) -> OpsWorksStack:
    """A Chef 11.10 stack as the describe-* reader finds it (OpsWorks ids, CustomJson a
    JSON string, a Secure value not returned, the RDS password filtered), with `key` the
    public key of its one good user."""
    return OpsWorksStack(
        stack=Resource(
            id=STACK_ID,
            source=f"stack {STACK_ID}",
            fields={
                "StackId": STACK_ID,
                "Arn": f"arn:aws:opsworks:eu-west-1:123456789012:stack/{STACK_ID}/",
                "Name": "Shop Production",
                "Region": "eu-west-1",
                "VpcId": "vpc-0abc1234",
                "DefaultSubnetId": "subnet-0abc1234",
                "DefaultOs": "Ubuntu 18.04 LTS",
                "DefaultSshKeyName": "shop-key",
                "DefaultInstanceProfileArn": (
                    "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role"
                ),
                "ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
                "HostnameTheme": "Layer_Dependent",
                "Attributes": {"Color": "rgb(45, 114, 184)"},
                "CustomJson": '{"shop": {"currency": "EUR"}}',
                "ConfigurationManager": {"Name": "Chef", "Version": "11.10"},
                "ChefConfiguration": {"ManageBerkshelf": False},
                "UseCustomCookbooks": True,
                "CustomCookbooksSource": {
                    "Type": "git",
                    "Url": "https://github.com/example/shop-cookbooks.git",
                    "Revision": "main",
                },
                "CreatedAt": "2019-03-01T10:00:00+00:00",
            },
        ),
        layers=[
            Resource(
                id=WEB_ID,
                source=f"layer {WEB_ID}",
                fields={
                    "StackId": STACK_ID,
                    "LayerId": WEB_ID,
                    "Type": "custom",
                    "Name": "Web Servers",
                    "Shortname": "Web_Servers",
                    "EnableAutoHealing": True,
                    "AutoAssignElasticIps": False,
                    "CustomRecipes": {
                        "Setup": ["nginx", "shop::setup"],
                        "Deploy": ["shop::deploy"],
                        "Shutdown": ["shop::stop"],
                    },
                    "DefaultRecipes": {"Setup": ["opsworks_initial_setup"]},
                    "CustomJson": '{"nginx": {"workers": 4}}',
                    "CustomSecurityGroupIds": ["sg-0abc1234"],
                    "VolumeConfigurations": [
                        {"MountPoint": "/srv", "NumberOfDisks": 1, "Size": 20, "VolumeType": "gp3"}
                    ],
                    "LoadBasedAutoScaling": {
                        "Enable": True,
                        "UpScaling": {
                            "InstanceCount": 2,
                            "ThresholdsWaitTime": 5,
                            "IgnoreMetricsTime": 10,
                            "CpuThreshold": 80.0,
                            "MemoryThreshold": -1.0,
                        },
                        "DownScaling": {
                            "InstanceCount": 1,
                            "ThresholdsWaitTime": 10,
                            "IgnoreMetricsTime": 10,
                            "CpuThreshold": 20.0,
                        },
                    },
                    "Attributes": {"MysqlRootPassword": None, "RubyVersion": None},
                },
            ),
            Resource(
                id=CACHE_ID,
                source=f"layer {CACHE_ID}",
                fields={
                    "LayerId": CACHE_ID,
                    "Type": "memcached",
                    "Name": "Memcached",
                    "Shortname": "memcached",
                    "EnableAutoHealing": False,
                    "Attributes": {"MemcachedMemory": "512"},
                },
            ),
        ],
        instances=[
            Resource(
                id="i1",
                source="instance i1",
                fields={
                    "InstanceId": "i1",
                    "Hostname": "web1",
                    "LayerIds": [WEB_ID],
                    "InstanceType": "t3.small",
                    "Status": "online",
                    "PublicIp": "203.0.113.7",
                },
            ),
            Resource(
                id="i2",
                source="instance i2",
                fields={
                    "Hostname": "Shop_Both",
                    "LayerIds": [WEB_ID, CACHE_ID],
                    "InstanceType": "t3.medium",
                    "SubnetId": "subnet-0def5678",
                },
            ),
            Resource(
                id="i3",
                source="instance i3",
                fields={
                    "Hostname": "web-night",
                    "LayerIds": [WEB_ID],
                    "InstanceType": "t3.small",
                    "AutoScalingType": "timer",
                    "TimeBasedAutoScaling": {
                        "Monday": {"9": "on", "10": "on", "11": "off"},
                        "Friday": {"23": "on"},
                    },
                },
            ),
            Resource(
                id="i4",
                source="instance i4",
                fields={
                    "Hostname": "web-extra",
                    "LayerIds": [WEB_ID],
                    "InstanceType": "t3.small",
                    "AutoScalingType": "load",
                },
            ),
        ],
        apps=[
            Resource(
                id="a1",
                source="app a1",
                fields={
                    "AppId": "a1",
                    "Name": "Shop Store",
                    "Shortname": "store",
                    "Type": "other",
                    "AppSource": {
                        "Type": "archive",
                        "Url": "https://example.com/store.tar.gz",
                    },
                    "Environment": [
                        {"Key": "MODE", "Value": "production", "Secure": False},
                        {"Key": "API_TOKEN", "Secure": True},
                    ],
                    "Domains": ["shop.example.com", "not a domain"],
                    "EnableSsl": False,
                    "DataSources": [
                        {"Type": "RdsDbInstance", "Arn": DB_ARN, "DatabaseName": "shop"}
                    ],
                    "Attributes": {"DocumentRoot": "public", "AutoBundleOnDeploy": "true"},
                },
            ),
        ],
        rds_db_instances=[
            Resource(
                id=DB_ARN,
                source=f"rds {DB_ARN}",
                fields={
                    "RdsDbInstanceArn": DB_ARN,
                    "DbInstanceIdentifier": "shop-db",
                    "DbUser": "shop",
                    "DbPassword": "*****FILTERED*****",
                    "Region": "eu-west-1",
                    "Address": "shop-db.abc.eu-west-1.rds.amazonaws.com",
                    "Engine": "mysql",
                    "StackId": STACK_ID,
                },
            )
        ],
        users=[
            Resource(
                id="u1",
                source="user alice",
                fields={
                    "IamUserArn": "arn:aws:iam::123456789012:user/Alice.Smith",
                    "SshUsername": "Alice.Smith",
                    "SshPublicKey": key,
                    "AllowSelfManagement": True,
                    "AllowSudo": True,
                },
            ),
            Resource(
                id="u2",
                source="user bob",
                fields={"SshUsername": "bob", "SshPublicKey": "ssh-rsa not-base64!"},
            ),
        ],
    )
