"""The AWS side of the sandbox's interruption e2e, through boto3 against moto's SQS.

  sqs.py create QUEUE                 creates the queue (what Karpenter's CloudFormation makes)
  sqs.py spot-warning QUEUE INSTANCE  sends an EC2 Spot Instance Interruption Warning for the
                                      instance, shaped as EventBridge delivers it
  sqs.py depth QUEUE                  prints how many messages are waiting or in flight

The endpoint comes from AWS_ENDPOINT_URL_SQS, the region from AWS_REGION.
"""

import json
import os
import sys
import uuid
from datetime import datetime, timezone

import boto3


def client():
    return boto3.client(
        "sqs",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )


def main(argv):
    sqs = client()
    cmd, queue = argv[1], argv[2]
    if cmd == "create":
        sqs.create_queue(QueueName=queue)
        return 0
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    if cmd == "spot-warning":
        instance = argv[3]
        region = os.environ.get("AWS_REGION", "us-east-1")
        body = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "EC2 Spot Instance Interruption Warning",
            "source": "aws.ec2",
            "account": "123456789012",
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:ec2:{region}:123456789012:instance/{instance}"],
            "detail": {"instance-id": instance, "instance-action": "terminate"},
        }
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
        return 0
    if cmd == "depth":
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        print(int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]))
        return 0
    print(f"unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
