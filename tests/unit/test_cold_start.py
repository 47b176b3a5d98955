"""Cold-start properties that a refactor could silently lose (timings live in `make bench`)."""

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import sys
sys.path.insert(0, "functions/policy_alerts")
import botocore.client
created = []
original = botocore.client.ClientCreator.create_client
botocore.client.ClientCreator.create_client = lambda self, *a, **k: created.append(a[0]) or original(self, *a, **k)
import app
print("parser-models" if "aws_lambda_powertools.utilities.parser.models" in sys.modules else "lean")
print("tracer" if "aws_xray_sdk" in sys.modules else "no-tracer")
print("clients:" + ",".join(created))
"""


def test_importing_a_handler_loads_no_parser_models_no_tracer_and_builds_no_client():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["lean", "no-tracer", "clients:"]
