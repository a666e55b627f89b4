"""EFS mode: the snapshot segment cache (CHROMA_ROOT) on an EFS access point, and what the functions
that mount it need to reach S3 and DynamoDB from inside the VPC.

With EfsFileSystemId, EfsAccessPointId, EfsSubnetIds and EfsSecurityGroupIds all given, the functions
that read snapshots (vector-compact, mark-batches-complete) mount the access point at /mnt/chroma in
those subnets; otherwise the cache lives in the function's /tmp and nothing runs in a VPC.

A Lambda function in a VPC has no internet route of its own (its network interfaces never get public
addresses), so without a way out every S3 and DynamoDB call waits until the function times out.
Neither function calls OpenAI or any other AWS API (logs, metrics and traces leave through Lambda
itself: metrics are CloudWatch embedded-metric log lines), so they need S3 and DynamoDB only: gateway
VPC endpoints, which cost nothing and attach to route tables, not subnets ("An endpoint of type gateway
serves as a target for a route in your route table", AWS::EC2::VPCEndpoint). CloudFormation cannot look
up a subnet's route table, so the operator names them (EfsRouteTableIds, the tables of EfsSubnetIds)
with the VPC (EfsVpcId). CreateGatewayEndpoints=false leaves endpoints the VPC already has alone: a
second S3 gateway endpoint on the same route table collides on the prefix-list route.
"""

from __future__ import annotations

from typing import Any

from embedding_ingest.aws.function_table import LambdaFunction

EFS_MOUNT_PATH = "/mnt/chroma"  # Lambda requires mounts under /mnt
TMP_CHROMA_ROOT = "/tmp/embedding-ingest/chroma-cache"
HAS_EFS = "HasEfs"
CREATE_ENDPOINTS = "CreateEfsGatewayEndpoints"
GATEWAY_SERVICES = {"S3GatewayEndpoint": "s3", "DynamoDbGatewayEndpoint": "dynamodb"}
NO_VALUE = {"Ref": "AWS::NoValue"}

_ACCESS_POINT_ARN = ("arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:"
                     "access-point/${EfsAccessPointId}")
_FILE_SYSTEM_ARN = ("arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:"
                    "file-system/${EfsFileSystemId}")
# ENIs in the subnets: the AWS-managed policy (its ec2:*NetworkInterface* actions admit no narrower resource).
VPC_ACCESS_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def parameters() -> dict[str, Any]:
    return {
        "EfsFileSystemId": {"Type": "String", "Default": "", "AllowedPattern": "^(fs-[0-9a-f]+)?$",
                            "Description": "EFS file system of the snapshot cache (empty: /tmp)"},
        "EfsAccessPointId": {"Type": "String", "Default": "", "AllowedPattern": "^(fsap-[0-9a-f]+)?$",
                             "Description": f"Its access point, mounted at {EFS_MOUNT_PATH} = CHROMA_ROOT"},
        "EfsSubnetIds": {"Type": "CommaDelimitedList", "Default": "",
                         "Description": "Subnets with a mount target of the file system"},
        "EfsSecurityGroupIds": {"Type": "CommaDelimitedList", "Default": "",
                                "Description": "Security groups allowed to reach the mount targets (NFS)"},
        "EfsVpcId": {"Type": "String", "Default": "", "AllowedPattern": "^(vpc-[0-9a-f]+)?$",
                     "Description": "The VPC of EfsSubnetIds (for the S3 and DynamoDB gateway endpoints)"},
        "EfsRouteTableIds": {"Type": "CommaDelimitedList", "Default": "",
                             "Description": "Route tables of EfsSubnetIds: the gateway endpoints' routes go "
                                            "here"},
        "CreateGatewayEndpoints": {"Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                                   "Description": "EFS mode: create S3 and DynamoDB gateway endpoints on "
                                                  "EfsRouteTableIds (false: the VPC has them already)"},
    }


def _given(value: Any) -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [value, ""]}]}


def conditions() -> dict[str, Any]:
    return {
        # EFS only with all of it given: file system, access point, subnets and security groups.
        HAS_EFS: {"Fn::And": [_given({"Ref": "EfsFileSystemId"}), _given({"Ref": "EfsAccessPointId"}),
                              _given({"Fn::Join": ["", {"Ref": "EfsSubnetIds"}]}),
                              _given({"Fn::Join": ["", {"Ref": "EfsSecurityGroupIds"}]})]},
        CREATE_ENDPOINTS: {"Fn::And": [{"Condition": HAS_EFS},
                                       {"Fn::Equals": [{"Ref": "CreateGatewayEndpoints"}, "true"]},
                                       _given({"Ref": "EfsVpcId"}),
                                       _given({"Fn::Join": ["", {"Ref": "EfsRouteTableIds"}]})]},
    }


def function_environment(function: LambdaFunction) -> dict[str, Any]:
    if not function.reads_snapshots:
        return {}
    return {"CHROMA_ROOT": {"Fn::If": [HAS_EFS, EFS_MOUNT_PATH, TMP_CHROMA_ROOT]}}


def function_properties(function: LambdaFunction) -> dict[str, Any]:
    if not function.reads_snapshots:
        return {}
    return {
        "FileSystemConfigs": {"Fn::If": [HAS_EFS, [{"Arn": {"Fn::Sub": _ACCESS_POINT_ARN},
                                                    "LocalMountPath": EFS_MOUNT_PATH}], NO_VALUE]},
        "VpcConfig": {"Fn::If": [HAS_EFS, {"SubnetIds": {"Ref": "EfsSubnetIds"},
                                           "SecurityGroupIds": {"Ref": "EfsSecurityGroupIds"}}, NO_VALUE]},
    }


def role_statements(function: LambdaFunction) -> list[Any]:
    if not function.reads_snapshots:
        return []
    return [{"Fn::If": [HAS_EFS, {
        "Sid": "SnapshotCacheOnEfs", "Effect": "Allow",
        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
        "Resource": {"Fn::Sub": _FILE_SYSTEM_ARN},
        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": {"Fn::Sub": _ACCESS_POINT_ARN}}},
    }, NO_VALUE]}]


def role_properties(function: LambdaFunction) -> dict[str, Any]:
    if not function.reads_snapshots:
        return {}
    return {"ManagedPolicyArns": {"Fn::If": [HAS_EFS, [{"Fn::Sub": VPC_ACCESS_POLICY}], NO_VALUE]}}


def resources() -> dict[str, Any]:
    """The S3 and DynamoDB gateway endpoints of EFS mode (conditional)."""
    return {logical_id: {"Type": "AWS::EC2::VPCEndpoint", "Condition": CREATE_ENDPOINTS, "Properties": {
        "VpcEndpointType": "Gateway",
        "VpcId": {"Ref": "EfsVpcId"},
        "ServiceName": {"Fn::Sub": f"com.amazonaws.${{AWS::Region}}.{service}"},
        "RouteTableIds": {"Ref": "EfsRouteTableIds"},
    }} for logical_id, service in GATEWAY_SERVICES.items()}
