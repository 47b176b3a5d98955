"""Cloud Custodian's Lambda for the policy equivalent to policy_alerts, packaged by c7n itself.

`python peer_build.py OUT.zip`, run with Custodian's own virtualenv (.tools/custodian): the policy
is loaded and validated by c7n, and `c7n.mu.PolicyLambda.get_archive()` builds the zip Custodian
deploys (c7n's sources, config.json, custodian_policy.py). The equivalent of policy_alerts: a
`mode: cloudtrail` policy on IAM users for AttachUserPolicy, notifying the SOC through SNS. It has
no filters: Custodian does less per event than policy_alerts, which analyses the policy, so a
ratio against it favours the peer.
"""

import shutil
import sys

PEER_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:connect-guard-peer-alerts"
POLICY = {
    "name": "connect-guard-peer-policy-alerts",
    "resource": "iam-user",
    "mode": {
        "type": "cloudtrail",
        "role": "arn:aws:iam::123456789012:role/custodian-connect-guard-peer",
        "events": [{"source": "iam.amazonaws.com", "event": "AttachUserPolicy", "ids": "requestParameters.userName"}],
    },
    "actions": [{"type": "notify", "to": ["soc@example.com"], "transport": {"type": "sns", "topic": PEER_TOPIC_ARN}}],
}


def main() -> None:
    from c7n.config import Config
    from c7n.mu import PolicyLambda
    from c7n.policy import Policy
    from c7n.resources import load_resources

    load_resources(("aws.iam-user",))
    policy = Policy(POLICY, Config.empty(account_id="123456789012", region="us-east-1"))
    policy.validate()
    archive = PolicyLambda(policy).get_archive()
    shutil.copy(archive.path, sys.argv[1])


if __name__ == "__main__":
    main()
