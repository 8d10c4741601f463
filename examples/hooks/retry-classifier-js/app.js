// A classify hook in JavaScript, the same as examples/hooks/retry-classifier
// in Rust: a container that exits with one of the codes in `retry-on`
// (default: 75, EX_TEMPFAIL) fails the run as retryable. Anything else it
// leaves to the next classifier, so it goes before the default one:
//
//   hooks:
//     classify: [{hook: retry-classifier-js.wasm, with: {retry-on: [75]}}, default-classifier]
//
// Built with componentize-js from podrun's WIT (build.sh); tested on a
// timeline recorded on a cluster:
//
//   podrun hook replay retry-classifier-js.wasm default-classifier \
//       --timeline tests/fixtures/timelines/temporary-failure.timeline.json \
//       --expect examples/hooks/temporary-failure.expect.yaml

export const classify = {
  // Returns a verdict, or undefined to leave the pod to the next
  // classifier; a thrown string is the hook's error.
  classify(ctx, observation) {
    const settings = JSON.parse(ctx.settings);
    const unknown = Object.keys(settings).filter((k) => k !== "retry-on");
    if (unknown.length > 0) {
      throw `unknown settings: ${unknown.sort().join(", ")}`;
    }
    const retryOn = settings["retry-on"] ?? [75];
    const pod = JSON.parse(observation.pod);
    for (const status of pod.status?.containerStatuses ?? []) {
      const code = status.state?.terminated?.exitCode;
      if (code === undefined || !retryOn.includes(code)) continue;
      return {
        outcome: "failed",
        retryable: true,
        reason: "TemporaryFailure",
        message: `container ${status.name} asked for a retry (exit code ${code})`,
        exitCode: code,
        evidence: [`containerStatuses[${status.name}].state.terminated.exitCode=${code}`],
        rule: "retry-on",
      };
    }
    return undefined;
  },
};
