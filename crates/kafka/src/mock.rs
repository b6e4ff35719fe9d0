//! An in-process Kafka cluster: librdkafka's mock brokers, for embedded mode and tests.
//!
//! `rdkafka::mocking::MockCluster` holds a raw pointer and is neither `Send` nor `Sync`, so a
//! future that held one could not be spawned. [`EmbeddedCluster`] keeps it on a thread of its
//! own and talks to it over a channel, which makes the handle an ordinary `Send + Sync` value
//! that async code can hold. Dropping the handle stops the thread and the brokers; drop it
//! after the clients that use it.
//!
//! The mock brokers speak the real protocol on loopback sockets and support what the worker
//! needs (consumer groups, offset commits, idempotent producers, headers). Two limits: topics
//! must be created through the mock API (there is no CreateTopics), and a group's first join
//! waits for the broker-side `group.initial.rebalance.delay.ms` (3 s in librdkafka's mock).

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Reply = mpsc::Sender<KafkaResult<()>>;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: Reply,
    },
    RequestErrors {
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
        reply: Reply,
    },
    ClearRequestErrors {
        api: RDKafkaApiKey,
        reply: Reply,
    },
    SetBrokerUp {
        broker: i32,
        up: bool,
        reply: Reply,
    },
}

/// A running mock cluster; see the module documentation.
pub struct EmbeddedCluster {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

fn gone() -> KafkaError {
    KafkaError::MockCluster(rdkafka::error::RDKafkaErrorCode::Fail)
}

impl EmbeddedCluster {
    /// Starts `brokers` mock brokers on loopback ports.
    pub fn start(brokers: i32) -> KafkaResult<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<KafkaResult<String>>();
        let (commands_tx, commands_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".to_owned())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serve commands until every handle is dropped; then the cluster is dropped.
                while let Ok(command) = commands_rx.recv() {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            reply,
                        } => {
                            let _ = reply.send(cluster.create_topic(&name, partitions, 1));
                        }
                        Command::RequestErrors { api, errors, reply } => {
                            cluster.request_errors(api, &errors);
                            let _ = reply.send(Ok(()));
                        }
                        Command::ClearRequestErrors { api, reply } => {
                            cluster.clear_request_errors(api);
                            let _ = reply.send(Ok(()));
                        }
                        Command::SetBrokerUp { broker, up, reply } => {
                            let _ = reply.send(if up {
                                cluster.broker_up(broker)
                            } else {
                                cluster.broker_down(broker)
                            });
                        }
                    }
                }
            })
            .map_err(|_| gone())?;
        let bootstrap = ready_rx.recv().map_err(|_| gone())??;
        Ok(Self {
            bootstrap,
            commands: Some(commands_tx),
            thread: Some(thread),
        })
    }

    /// The `bootstrap.servers` list of the mock brokers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn call(&self, command: impl FnOnce(Reply) -> Command) -> KafkaResult<()> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(command(reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }

    /// Creates a topic (replication factor 1).
    pub fn create_topic(&self, name: &str, partitions: i32) -> KafkaResult<()> {
        self.call(|reply| Command::CreateTopic {
            name: name.to_owned(),
            partitions,
            reply,
        })
    }

    /// Makes the next requests of kind `api` fail with `errors`, one per request, in order
    /// (fault injection for tests).
    pub fn fail_requests(
        &self,
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
    ) -> KafkaResult<()> {
        self.call(|reply| Command::RequestErrors { api, errors, reply })
    }

    /// Removes the errors queued by [`EmbeddedCluster::fail_requests`].
    pub fn clear_request_errors(&self, api: RDKafkaApiKey) -> KafkaResult<()> {
        self.call(|reply| Command::ClearRequestErrors { api, reply })
    }

    /// Takes broker `broker` (ids count from 1) down: its connections are closed and new
    /// ones refused until [`EmbeddedCluster::broker_up`] (an outage, for tests).
    pub fn broker_down(&self, broker: i32) -> KafkaResult<()> {
        self.call(|reply| Command::SetBrokerUp {
            broker,
            up: false,
            reply,
        })
    }

    /// Brings broker `broker` back after [`EmbeddedCluster::broker_down`].
    pub fn broker_up(&self, broker: i32) -> KafkaResult<()> {
        self.call(|reply| Command::SetBrokerUp {
            broker,
            up: true,
            reply,
        })
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which drops the cluster.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
