"""Powertools Logger and Metrics shared by every module (service name from the environment)."""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="ConnectGuard")
