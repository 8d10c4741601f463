//! `podrun runs list|get|logs|cancel|release`: a server's runs, read and
//! steered as `kubectl` reads a cluster.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use podrun::exit::Code;
use podrun::hooks::text::{MESSAGE_LIMIT, shown};
use serde_json::Value;

use crate::args::{RunsCommand, RunsFormat, RunsIdArgs, RunsListArgs, RunsLogsArgs, ServerArgs};
use crate::remote::{Client, refused, token};
use crate::{Failure, print_out, usage};

/// The most runs the server gives in one page.
const PAGE: u32 = 500;

pub(crate) fn runs(command: RunsCommand) -> Result<Code, Failure> {
    match command {
        RunsCommand::List(args) => list(args),
        RunsCommand::Get(args) => {
            let (client, path) = one(&args)?;
            let run = client
                .call("GET", &path, None)
                .map_err(|f| refused("read the run", f))?;
            show(&run, args.output, summary)
        }
        RunsCommand::Cancel(args) => {
            let (client, path) = one(&args)?;
            let run = client
                .call("POST", &format!("{path}/cancel"), None)
                .map_err(|f| refused("cancel the run", f))?;
            show(&run, args.output, |run| {
                format!(
                    "run {} cancelled ({})\n",
                    text(&run["id"]),
                    text(&run["state"])
                )
            })
        }
        RunsCommand::Release(args) => {
            let (client, path) = one(&args)?;
            client
                .call("DELETE", &path, None)
                .map_err(|f| refused("release the run", f))?;
            if args.output == RunsFormat::Text {
                print_out(&format!("run {} released\n", args.id));
            }
            Ok(Code::Success)
        }
        RunsCommand::Logs(args) => logs(args),
    }
}

fn client(args: &ServerArgs) -> Result<Client, Failure> {
    if !(args.server.starts_with("http://") || args.server.starts_with("https://")) {
        return Err(usage(format!(
            "--server {:?}: an http:// or https:// URL",
            args.server
        )));
    }
    Ok(Client::new(
        &args.server,
        token(args.token_file.as_deref())?,
    ))
}

/// The client and the path of the run `args` name.
fn one(args: &RunsIdArgs) -> Result<(Client, String), Failure> {
    Ok((client(&args.server)?, run_path(&args.id)?))
}

fn run_path(id: &str) -> Result<String, Failure> {
    if !podrun::run_id::is_valid(id) {
        return Err(usage(format!("{id:?} is not a run id")));
    }
    Ok(format!("/v1/runs/{id}"))
}

fn list(args: RunsListArgs) -> Result<Code, Failure> {
    let client = client(&args.server)?;
    let mut query = String::new();
    for (name, value) in [
        ("state", &args.state),
        ("application", &args.application),
        ("since", &args.since),
    ] {
        if let Some(value) = value {
            query.push_str(&format!(
                "&{name}={}",
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            ));
        }
    }
    let mut runs: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while runs.len() < args.limit as usize {
        let want = (args.limit - runs.len() as u32).min(PAGE);
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={}", utf8_percent_encode(c, NON_ALPHANUMERIC)))
            .unwrap_or_default();
        let page = client
            .call("GET", &format!("/v1/runs?limit={want}{query}{after}"), None)
            .map_err(|f| refused("list runs", f))?;
        let got = page["runs"].as_array().map_or(0, Vec::len);
        runs.extend(page["runs"].as_array().into_iter().flatten().cloned());
        match page["next"].as_str() {
            // An empty page that says there is more would never end.
            Some(next) if got > 0 => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    show(&Value::Array(runs), args.output, table)
}

fn logs(args: RunsLogsArgs) -> Result<Code, Failure> {
    let client = client(&args.server)?;
    let path = run_path(&args.id)?;
    if !args.follow {
        let mut out = std::io::stdout().lock();
        client
            .copy_to(&format!("{path}/logs"), &mut out)
            .map_err(|f| refused("read the run's log", f))?;
        let _ = std::io::Write::flush(&mut out);
        return Ok(Code::Success);
    }
    let mut containers = std::collections::BTreeSet::new();
    client
        .follow(&args.id, |container, line| {
            containers.insert(container.to_string());
            if containers.len() > 1 {
                print_out(&format!("[{container}] {line}\n"));
            } else {
                print_out(&format!("{line}\n"));
            }
        })
        .map_err(|f| refused("follow the run's log", f))?;
    Ok(Code::Success)
}

/// Prints `value` as `format` says; `text` makes the text form.
fn show(
    value: &Value,
    format: RunsFormat,
    text: impl Fn(&Value) -> String,
) -> Result<Code, Failure> {
    let out = match format {
        RunsFormat::Text => text(value),
        RunsFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        RunsFormat::Yaml => serde_saphyr::to_string(value).map_err(|e| {
            Failure::from((Code::Cluster, anyhow::anyhow!("cannot print YAML: {e}")))
        })?,
    };
    print_out(&out);
    Ok(Code::Success)
}

/// A JSON string as text; anything else as JSON; nothing as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => shown(s, MESSAGE_LIMIT),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Runs as a table, one line each.
fn table(runs: &Value) -> String {
    let rows: Vec<[String; 5]> = runs
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            [
                text(&r["id"]),
                text(&r["application"]),
                text(&r["state"]),
                text(&r["createdAt"]),
                text(&r["result"]["reason"]),
            ]
        })
        .collect();
    let head = ["ID", "APPLICATION", "STATE", "CREATED", "REASON"].map(String::from);
    let mut widths = head.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(&head)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// One run, field by field.
fn summary(run: &Value) -> String {
    let result = &run["result"];
    let mut fields = vec![
        ("id", text(&run["id"])),
        ("application", text(&run["application"])),
        ("state", text(&run["state"])),
        ("created", text(&run["createdAt"])),
        ("started", text(&run["startedAt"])),
        ("finished", text(&run["finishedAt"])),
        ("server", text(&run["server"])),
    ];
    if !result.is_null() {
        fields.push(("reason", text(&result["reason"])));
        fields.push(("message", text(&result["message"])));
        fields.push(("exit code", text(&result["exitCode"])));
        fields.push(("retryable", text(&result["retryable"])));
    }
    let cut = if run["log"]["truncated"] == true {
        " (cut at the limit)"
    } else {
        ""
    };
    fields.push(("log", format!("{} bytes{cut}", text(&run["log"]["bytes"]))));
    fields
        .into_iter()
        .map(|(name, value)| format!("{:12} {value}\n", format!("{name}:")))
        .collect()
}
