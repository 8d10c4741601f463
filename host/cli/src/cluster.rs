//! `podrun gc` and `podrun status`: podrun's pods on a cluster.

use podrun::exit::Code;
use podrun::runtime::kube;

use crate::args::{GcArgs, RunFormat, StatusArgs};
use crate::{Failure, async_runtime, print_out, read_pod, usage};

pub(crate) fn gc(args: GcArgs) -> Result<Code, Failure> {
    let rt = async_runtime()?;
    let age = std::time::Duration::from_secs(args.older_than);
    let deleted = rt.block_on(async {
        let (client, _) = kube::client(&args.cluster.connect()).await?;
        kube::gc(
            client,
            args.namespace.as_deref(),
            args.selector.as_deref(),
            age,
            args.dry_run,
        )
        .await
    });
    let deleted = deleted.map_err(|e| Failure::from((e.exit_code(), e)))?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for pod in &deleted {
        println!("{verb} pod {pod}");
    }
    eprintln!("podrun: {verb} {} pod(s)", deleted.len());
    Ok(Code::Success)
}

pub(crate) fn status(args: StatusArgs) -> Result<Code, Failure> {
    let pod: k8s_openapi::api::core::v1::Pod = match (&args.file, &args.pod) {
        (Some(file), _) => read_pod(file)?,
        (None, Some(name)) => {
            let rt = async_runtime()?;
            let found = rt.block_on(async {
                let (client, default_ns) = kube::client(&args.cluster.connect()).await?;
                let ns = args.namespace.clone().unwrap_or(default_ns);
                kube::get(client, &ns, name).await.map(|p| (p, ns))
            });
            match found.map_err(|e| Failure::from((e.exit_code(), e)))? {
                (Some(pod), _) => pod,
                (None, ns) => return Err(usage(format!("there is no pod {ns}/{name}"))),
            }
        }
        (None, None) => return Err(usage("name a pod, or a file with -f")),
    };
    let text = match args.output {
        RunFormat::Text => podrun::steps::describe(&pod),
        RunFormat::Json => {
            let steps = podrun::steps::steps(&pod);
            let running = steps
                .as_deref()
                .and_then(podrun::steps::running)
                .map(|(n, s)| serde_json::json!({"step": n, "name": s.name}));
            let status = pod.status.as_ref();
            let json = serde_json::json!({
                "namespace": pod.metadata.namespace,
                "pod": pod.metadata.name,
                "phase": status.and_then(|s| s.phase.clone()),
                "containers": podrun::result::containers(Some(&pod)),
                "steps": steps,
                "running": running,
            });
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
    };
    print_out(&text);
    Ok(Code::Success)
}
