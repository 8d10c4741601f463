"""A classify hook in Python: a container killed for its memory is a
failure worth retrying with more (exit code 137, retryable), and any other
pod is left to the next classifier in the chain.

Built with componentize-py from podrun's WIT (see build.sh); tested on a
timeline recorded on a cluster:

    podrun hook replay python-classifier.wasm default-classifier \
        --timeline tests/fixtures/timelines/oom-killed.timeline.json \
        --expect examples/hooks/python-classifier/oom.expect.yaml
"""

import json

from wit_world import exports
from wit_world.exports import classify


class Classify(exports.Classify):
    def classify(self, ctx, observation):
        pod = json.loads(observation.pod)
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for status in statuses:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("reason") != "OOMKilled":
                continue
            name = status.get("name", "?")
            return classify.Verdict(
                outcome=classify.Outcome.FAILED,
                retryable=True,
                reason="OutOfMemory",
                message=f"container {name} ran out of memory: run it again with a higher limit",
                exit_code=137,
                evidence=[f"containerStatuses[{name}].state.terminated.reason=OOMKilled"],
                rule=None,
            )
        return None
