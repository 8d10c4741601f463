//! One watch per namespace for all of podrun's pods, shared by the runs
//! that follow them: a server's thousand runs cost the API server one
//! watch, not a thousand. A reflector keeps the pods' latest state, so a
//! run that starts following its pod late still gets it; each change goes
//! to the follower of its pod.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::RUN_ID_LABEL;

/// What a follower gets: a change of its pod, or a (re)start of the
/// watch (`Init`, `InitDone`: a pod not listed in between is gone), or
/// why the watch failed (it resumes by itself).
pub(super) type Item = Result<watcher::Event<Pod>, String>;

/// The shared watches of one runtime, one per namespace it runs pods in.
pub(super) struct SharedWatches {
    client: Client,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
}

struct Namespace {
    followers: Mutex<HashMap<String, mpsc::UnboundedSender<Item>>>,
    pods: reflector::Store<Pod>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SharedWatches {
    fn drop(&mut self) {
        for ns in lock(&self.namespaces).values() {
            ns.task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SharedWatches {
    pub(super) fn new(client: Client) -> SharedWatches {
        SharedWatches {
            client,
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    /// Follows pod `name` of `namespace`: its current state if the watch
    /// knows it, then every change.
    pub(super) fn follow(&self, namespace: &str, name: &str) -> Following {
        let ns = lock(&self.namespaces)
            .entry(namespace.to_string())
            .or_insert_with(|| self.start(namespace))
            .clone();
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut followers = lock(&ns.followers);
            if let Some(pod) = ns.pods.get(&ObjectRef::new(name).within(namespace)) {
                let _ = tx.send(Ok(watcher::Event::Apply(Pod::clone(&pod))));
            }
            followers.insert(name.to_string(), tx);
        }
        Following {
            rx,
            ns,
            name: name.to_string(),
        }
    }

    fn start(&self, namespace: &str) -> Arc<Namespace> {
        let (pods, writer) = reflector::store();
        Arc::new_cyclic(|me: &Weak<Namespace>| {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let config = watcher::Config::default().labels(RUN_ID_LABEL);
            let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
            Namespace {
                followers: Mutex::new(HashMap::new()),
                pods,
                task: tokio::spawn(fan_out(me.clone(), stream)),
            }
        })
    }
}

/// Gives each change to its pod's follower, and the watch's restarts and
/// failures to all.
async fn fan_out(
    ns: Weak<Namespace>,
    stream: impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let Some(ns) = ns.upgrade() else { return };
        let mut followers = lock(&ns.followers);
        let to_all = |item: Item, followers: &mut HashMap<String, mpsc::UnboundedSender<Item>>| {
            followers.retain(|_, tx| tx.send(item.clone()).is_ok());
        };
        match item {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if let Some(tx) = followers.get(&name) {
                    let _ = tx.send(Ok(watcher::Event::Apply(pod)));
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if let Some(tx) = followers.get(&name) {
                    let _ = tx.send(Ok(watcher::Event::Delete(pod)));
                }
            }
            Ok(event @ (watcher::Event::Init | watcher::Event::InitDone)) => {
                to_all(Ok(event), &mut followers)
            }
            Err(e) => to_all(Err(e.to_string()), &mut followers),
        }
    }
}

/// The changes of one pod; it stops being followed when dropped.
pub(super) struct Following {
    rx: mpsc::UnboundedReceiver<Item>,
    ns: Arc<Namespace>,
    name: String,
}

impl Stream for Following {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        lock(&self.ns.followers).remove(&self.name);
    }
}
