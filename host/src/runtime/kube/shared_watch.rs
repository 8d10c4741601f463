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

/// The followers of each pod name (two runs may use one name in turn).
type Followers = HashMap<String, Vec<mpsc::UnboundedSender<Item>>>;

struct Namespace {
    name: String,
    followers: Mutex<Followers>,
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

    /// Follows pod `name` of `namespace` (the one of `uid`, when known):
    /// its current state if the watch knows it, then every change.
    pub(super) fn follow(&self, namespace: &str, name: &str, uid: Option<String>) -> Following {
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
            followers
                .entry(name.to_string())
                .or_default()
                .push(tx.clone());
        }
        Following {
            rx,
            tx,
            ns,
            name: name.to_string(),
            uid,
        }
    }

    fn start(&self, namespace: &str) -> Arc<Namespace> {
        let (pods, writer) = reflector::store();
        Arc::new_cyclic(|me: &Weak<Namespace>| {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let config = watcher::Config::default().labels(RUN_ID_LABEL);
            let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
            Namespace {
                name: namespace.to_string(),
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
        let followers = lock(&ns.followers);
        let to_pod = |pod: &Pod, event: Item, followers: &Followers| {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            for tx in followers.get(name).into_iter().flatten() {
                let _ = tx.send(event.clone());
            }
        };
        let to_all = |item: Item, followers: &Followers| {
            for tx in followers.values().flatten() {
                let _ = tx.send(item.clone());
            }
        };
        match item {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                to_pod(&pod, Ok(watcher::Event::Apply(pod.clone())), &followers)
            }
            Ok(watcher::Event::Delete(pod)) => {
                to_pod(&pod, Ok(watcher::Event::Delete(pod.clone())), &followers)
            }
            Ok(watcher::Event::Init) => to_all(Ok(watcher::Event::Init), &followers),
            Ok(watcher::Event::InitDone) => {
                to_all(Ok(watcher::Event::InitDone), &followers);
                // A follower that came during the relist missed its pod's
                // listing: the relisted state, from the store.
                for name in followers.keys() {
                    let pod = ns.pods.get(&ObjectRef::new(name).within(&ns.name));
                    if let Some(pod) = pod {
                        let pod = Pod::clone(&pod);
                        to_pod(&pod, Ok(watcher::Event::Apply(pod.clone())), &followers);
                    }
                }
            }
            Err(e) => to_all(Err(e.to_string()), &followers),
        }
        drop(followers);
    }
}

/// The changes of one pod; it stops being followed when dropped.
pub(super) struct Following {
    rx: mpsc::UnboundedReceiver<Item>,
    /// This follower's end of the channel, to find it among the pod
    /// name's followers when dropped.
    tx: mpsc::UnboundedSender<Item>,
    ns: Arc<Namespace>,
    name: String,
    uid: Option<String>,
}

impl Following {
    /// Whether `item` is about this follower's pod (or about the watch).
    fn ours(&self, item: &Item) -> bool {
        match (item, &self.uid) {
            (Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod)), Some(uid)) => {
                pod.metadata.uid.as_ref() == Some(uid)
            }
            _ => true,
        }
    }
}

impl Stream for Following {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) if !self.ours(&item) => continue,
                other => return other,
            }
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut followers = lock(&self.ns.followers);
        if let Some(txs) = followers.get_mut(&self.name) {
            txs.retain(|tx| !tx.same_channel(&self.tx));
            if txs.is_empty() {
                followers.remove(&self.name);
            }
        }
    }
}
