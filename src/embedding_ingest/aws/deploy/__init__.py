"""Deploy-time AWS: the CloudFormation `template` (and its `operations_template` part: schedules,
alarms), `iam` roles, and the image's Dockerfile. The table of Lambda functions they deploy is
aws/function_table.py, which the handlers read too."""
