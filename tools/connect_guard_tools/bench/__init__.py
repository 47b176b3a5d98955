"""Performance budget checks (`make bench`): every row of docs/performance.md, measured and judged.

Modules: budgets (the doc's table, verdicts, exit code), calls (AWS calls counted and answers
recorded at botocore), scenarios (the corpus events the bench uses), embedded (them through the
embedded AWS), cold (fresh-process cold init and warm CPU against the floor and Cloud Custodian),
child (the fresh process), replaying (the replay's rows), peer_build and peer_record (Custodian).
"""
