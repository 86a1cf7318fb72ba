"""EventBridge on moto, through boto3, for tests/sqs_moto.rs: a rule matching the interruption
events (as Karpenter's CloudFormation makes it) targeting the queue, then one event of each kind
put on the bus, so that moto's EventBridge writes the envelopes into SQS itself.

  eventbridge.py ENDPOINT QUEUE_ARN
"""

import json
import sys

import boto3


def main(endpoint, queue_arn):
    events = boto3.client(
        "events",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    events.put_rule(
        Name="capstan-interruption",
        EventPattern=json.dumps({
            "source": ["aws.ec2", "aws.health"],
            "detail-type": [
                "EC2 Spot Instance Interruption Warning",
                "EC2 Instance State-change Notification",
                "AWS Health Event",
            ],
        }),
    )
    events.put_targets(Rule="capstan-interruption", Targets=[{"Id": "queue", "Arn": queue_arn}])

    def entry(source, detail_type, detail):
        return {
            "Source": source,
            "DetailType": detail_type,
            "Resources": ["arn:aws:ec2:us-west-2a:instance/i-0123456789abcdef0"],
            "Detail": json.dumps(detail),
        }

    out = events.put_events(Entries=[
        entry("aws.ec2", "EC2 Spot Instance Interruption Warning",
              {"instance-id": "i-0123456789abcdef0", "instance-action": "terminate"}),
        entry("aws.ec2", "EC2 Instance State-change Notification",
              {"instance-id": "i-0123456789abcdef1", "state": "stopping"}),
        entry("aws.health", "AWS Health Event",
              {"service": "EC2", "eventTypeCategory": "scheduledChange",
               "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
               "affectedEntities": [{"entityValue": "i-0123456789abcdef2"}]}),
    ])
    if out.get("FailedEntryCount"):
        print(f"put_events failed: {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
