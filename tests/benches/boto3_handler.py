"""Baseline for the cold-start benchmark: a Python 3.11 Lambda handler that builds the
same AWS clients as the Rust workers, then asks the Runtime API for its first event."""
import os
import urllib.request

import boto3

clients = [boto3.client(name) for name in ("s3", "sqs", "events", "transcribe", "comprehendmedical")]
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next").read()
