"""A classify hook in Python, the same as examples/hooks/retry-classifier in
Rust: a container that exits with one of the codes in `retry-on` (default:
75, EX_TEMPFAIL) fails the run as retryable. Anything else it leaves to the
next classifier, so it goes before the default one:

    hooks:
      classify: [{hook: retry-classifier-python.wasm, with: {retry-on: [75]}}, default-classifier]

Built with componentize-py from podrun's WIT (build.sh); tested on a
timeline recorded on a cluster:

    podrun hook replay retry-classifier-python.wasm default-classifier \
        --timeline tests/fixtures/timelines/temporary-failure.timeline.json \
        --expect examples/hooks/temporary-failure.expect.yaml
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import classify


class Classify(exports.Classify):
    def classify(self, ctx, observation):
        settings = json.loads(ctx.settings)
        unknown = set(settings) - {"retry-on"}
        if unknown:
            # The hook's error, not a verdict: the run fails with it.
            raise Err(f"unknown settings: {', '.join(sorted(unknown))}")
        retry_on = settings.get("retry-on", [75])
        pod = json.loads(observation.pod)
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            if code is None or code not in retry_on:
                continue
            name = status.get("name", "?")
            return classify.Verdict(
                outcome=classify.Outcome.FAILED,
                retryable=True,
                reason="TemporaryFailure",
                message=f"container {name} asked for a retry (exit code {code})",
                exit_code=code,
                evidence=[f"containerStatuses[{name}].state.terminated.exitCode={code}"],
                rule="retry-on",
            )
        return None
