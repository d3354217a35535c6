//! A three-member replica set as the MongoDB drivers see it, over one FerretDB (which has no
//! replica sets): three loopback ports that answer `hello` / `isMaster` themselves and
//! forward every other message to the one server behind them.
//!
//! - `hello` (OP_MSG) and the legacy `isMaster` handshake (OP_QUERY) are answered with
//!   `setName`, `hosts`, `primary`, `me`, `isWritablePrimary` / `secondary`, an `electionId`
//!   and `setVersion` that grow with each step-down, `logicalSessionTimeoutMinutes` and
//!   FerretDB's `maxWireVersion`. No `topologyVersion`: the driver polls (no streaming
//!   monitor), at its heartbeat frequency.
//! - Because the set advertises sessions, the driver adds `lsid`, `txnNumber` (retryable
//!   writes), `$readPreference` and the like, which FerretDB refuses: they are stripped
//!   before forwarding ([`STRIPPED_FIELDS`]).
//! - A member that is not the primary answers writes with 10107 (NotWritablePrimary,
//!   labelled `RetryableWriteError` for retryable writes) and primary reads with 13435, as a
//!   real secondary does.
//! - [`ReplicaSet::member_down`] closes a member's port and aborts its connections (its
//!   heartbeats fail with "connection refused"); [`ReplicaSet::member_up`] opens it again;
//!   [`ReplicaSet::step_down`] names a new primary in every `hello`.
//!
//! Its tasks run on the caller's Tokio runtime; dropping the set stops them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Members in the set.
pub const MEMBERS: usize = 3;

/// Fields the drivers add for a replica set that FerretDB refuses; removed before forwarding.
pub const STRIPPED_FIELDS: &[&str] = &[
    "lsid",
    "txnNumber",
    "$clusterTime",
    "$readPreference",
    "autocommit",
    "startTransaction",
    "readConcern",
];

/// The wire version announced: FerretDB's (v1.24 speaks 0..21).
pub const MAX_WIRE_VERSION: i32 = 21;

/// Commands only a primary accepts.
const WRITE_COMMANDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "findAndModify",
    "findandmodify",
    "createIndexes",
    "dropIndexes",
    "drop",
    "dropDatabase",
    "create",
    "collMod",
    "renameCollection",
];

/// Reads a secondary refuses unless the read preference allows secondaries.
const PRIMARY_READS: &[&str] = &["find", "aggregate", "count", "distinct"];

const OP_REPLY: i32 = 1;
const OP_QUERY: i32 = 2004;
const OP_MSG: i32 = 2013;
const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;
const HEADER_LEN: usize = 16;
const MAX_MESSAGE: usize = 48_000_000;

/// The set's shared view: who is primary, the election term, the counters.
struct Shared {
    set_name: String,
    hosts: Vec<String>,
    upstream: SocketAddr,
    view: Mutex<View>,
    next_request_id: AtomicI32,
    next_connection_id: AtomicI32,
}

#[derive(Debug, Clone, Copy)]
struct View {
    primary: Option<usize>,
    /// Grows with each step-down: the electionId's counter and the setVersion.
    term: u32,
}

/// A replica-set stand-in: three loopback ports in front of one server.
pub struct ReplicaSet {
    shared: Arc<Shared>,
    /// Each member's accept loop (it owns that member's connections), while up.
    running: Mutex<Vec<Option<JoinHandle<()>>>>,
}

impl ReplicaSet {
    /// Opens three members named `127.0.0.1:PORT` in front of `upstream` (a FerretDB or
    /// mongod address), member 0 primary, in set `set_name`.
    pub async fn start(upstream: SocketAddr, set_name: &str) -> io::Result<ReplicaSet> {
        let mut listeners = Vec::with_capacity(MEMBERS);
        for _ in 0..MEMBERS {
            listeners.push(listen(SocketAddr::from(([127, 0, 0, 1], 0)))?);
        }
        let hosts = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            set_name: set_name.to_string(),
            hosts,
            upstream,
            view: Mutex::new(View {
                primary: Some(0),
                term: 1,
            }),
            next_request_id: AtomicI32::new(1),
            next_connection_id: AtomicI32::new(1),
        });
        let running = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| Some(tokio::spawn(accept_loop(shared.clone(), i, l))))
            .collect();
        Ok(ReplicaSet {
            shared,
            running: Mutex::new(running),
        })
    }

    /// `mongodb://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?replicaSet=NAME`.
    pub fn url(&self) -> String {
        format!(
            "mongodb://{}/?replicaSet={}",
            self.shared.hosts.join(","),
            self.shared.set_name
        )
    }

    /// `127.0.0.1:PORT` of each member, as `hello` names them.
    pub fn hosts(&self) -> &[String] {
        &self.shared.hosts
    }

    /// The current primary, if any.
    pub fn primary(&self) -> Option<usize> {
        self.shared.view().primary
    }

    /// Closes member `i`'s port and aborts its connections (a killed or restarting
    /// member). Returns once the port refuses connections.
    pub async fn member_down(&self, i: usize) {
        let task = self.running.lock().unwrap_or_else(|p| p.into_inner())[i].take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Opens member `i`'s port again (same address). No-op when it is up.
    pub fn member_up(&self, i: usize) -> io::Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running[i].is_some() {
            return Ok(());
        }
        let addr: SocketAddr = self.shared.hosts[i]
            .parse()
            .expect("hosts are socket addresses");
        let listener = listen(addr)?;
        running[i] = Some(tokio::spawn(accept_loop(self.shared.clone(), i, listener)));
        Ok(())
    }

    /// Ends the current primary's term: from now on every `hello` names `new_primary`
    /// (with a greater electionId and setVersion), and the old primary answers writes with
    /// NotWritablePrimary. `None` leaves the set without a primary (an election under way).
    pub fn step_down(&self, new_primary: Option<usize>) {
        let mut view = self.shared.view.lock().unwrap_or_else(|p| p.into_inner());
        view.primary = new_primary;
        view.term += 1;
    }

    /// What member `i` answers to `hello` (`legacy`: to `isMaster`) right now.
    pub fn hello_reply(&self, i: usize, legacy: bool) -> Document {
        self.shared.hello(i, legacy, false)
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        for task in self
            .running
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// A listening socket with SO_REUSEADDR, so a member can reopen its port at once.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn accept_loop(shared: Arc<Shared>, member: usize, listener: TcpListener) {
    // Dropping this task drops the set, which aborts every connection of the member.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(shared.clone(), member, stream));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl Shared {
    fn view(&self) -> View {
        *self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request_id(&self) -> i32 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    fn hello(&self, member: usize, legacy: bool, hello_ok: bool) -> Document {
        let view = self.view();
        let is_primary = view.primary == Some(member);
        let mut reply = Document::new();
        reply.insert(
            if legacy {
                "ismaster"
            } else {
                "isWritablePrimary"
            },
            is_primary,
        );
        reply.insert("secondary", !is_primary);
        reply.insert("setName", self.set_name.clone());
        reply.insert("setVersion", view.term as i32);
        reply.insert(
            "hosts",
            self.hosts
                .iter()
                .map(|h| Bson::String(h.clone()))
                .collect::<Vec<_>>(),
        );
        if let Some(p) = view.primary {
            reply.insert("primary", self.hosts[p].clone());
        }
        if is_primary {
            reply.insert("electionId", election_id(view.term));
        }
        reply.insert("me", self.hosts[member].clone());
        reply.insert("maxBsonObjectSize", 16 * 1024 * 1024);
        reply.insert("maxMessageSizeBytes", MAX_MESSAGE as i32);
        reply.insert("maxWriteBatchSize", 100_000);
        reply.insert("localTime", bson::DateTime::now());
        reply.insert("logicalSessionTimeoutMinutes", 30);
        reply.insert(
            "connectionId",
            self.next_connection_id.fetch_add(1, Ordering::Relaxed),
        );
        reply.insert("minWireVersion", 0);
        reply.insert("maxWireVersion", MAX_WIRE_VERSION);
        reply.insert("readOnly", false);
        if hello_ok {
            reply.insert("helloOk", true);
        }
        reply.insert("ok", 1.0);
        reply
    }

    /// The answer member `member` gives itself to `body`, or `None` to forward it.
    fn answer(&self, member: usize, body: &Document) -> Option<Document> {
        let name = body.keys().next()?.as_str();
        match name {
            "hello" => Some(self.hello(member, false, body.contains_key("helloOk"))),
            "isMaster" | "ismaster" => Some(self.hello(member, true, body.contains_key("helloOk"))),
            _ if self.view().primary == Some(member) => None,
            _ if WRITE_COMMANDS.contains(&name) => {
                let mut error = doc! {
                    "ok": 0.0,
                    "errmsg": "not primary",
                    "code": 10107,
                    "codeName": "NotWritablePrimary",
                };
                if body.contains_key("txnNumber") {
                    error.insert("errorLabels", vec!["RetryableWriteError"]);
                }
                Some(error)
            }
            _ if PRIMARY_READS.contains(&name) && !secondary_ok(body) => Some(doc! {
                "ok": 0.0,
                "errmsg": "not primary and secondaryOk=false",
                "code": 13435,
                "codeName": "NotPrimaryNoSecondaryOk",
            }),
            _ => None,
        }
    }
}

/// The electionId of a term: greater for every later term.
fn election_id(term: u32) -> ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes[8..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

/// True when the command's `$readPreference` lets a secondary answer.
fn secondary_ok(body: &Document) -> bool {
    body.get_document("$readPreference")
        .ok()
        .and_then(|rp| rp.get_str("mode").ok())
        .is_some_and(|mode| mode != "primary")
}

/// `body` without the fields FerretDB refuses.
pub fn strip_session_fields(mut body: Document) -> Document {
    for field in STRIPPED_FIELDS {
        body.remove(*field);
    }
    body
}

/// One connection from the driver to a member: hellos and refusals answered here, the rest
/// forwarded over a connection of its own to the server behind.
async fn serve(shared: Arc<Shared>, member: usize, mut client: TcpStream) -> io::Result<()> {
    let mut upstream: Option<TcpStream> = None;
    loop {
        let message = read_message(&mut client).await?;
        let header = Header::parse(&message);
        let (reply, forward) = match header.op_code {
            OP_MSG => {
                let msg = OpMsg::parse(&message[HEADER_LEN..])?;
                match shared.answer(member, &msg.body) {
                    Some(answer) => (Some(op_msg_reply(&shared, &header, &answer)?), None),
                    None => (None, Some((msg.encode(&header)?, msg.more_to_come()))),
                }
            }
            OP_QUERY => match op_query_command(&message[HEADER_LEN..])
                .and_then(|body| shared.answer(member, &body))
            {
                Some(answer) => (Some(op_reply(&shared, &header, &answer)?), None),
                None => (None, Some((message.clone(), false))),
            },
            _ => (None, Some((message.clone(), false))),
        };
        if let Some(reply) = reply {
            client.write_all(&reply).await?;
        }
        if let Some((bytes, more_to_come)) = forward {
            if upstream.is_none() {
                let stream = TcpStream::connect(shared.upstream).await?;
                let _ = stream.set_nodelay(true);
                upstream = Some(stream);
            }
            let server = upstream.as_mut().expect("connected above");
            server.write_all(&bytes).await?;
            if !more_to_come {
                let answer = read_message(server).await?;
                client.write_all(&answer).await?;
            }
        }
    }
}

/// A message header.
struct Header {
    request_id: i32,
    op_code: i32,
}

impl Header {
    fn parse(message: &[u8]) -> Header {
        Header {
            request_id: i32_at(message, 4),
            op_code: i32_at(message, 12),
        }
    }
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads one whole message (header included).
async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = i32::from_le_bytes(len) as usize;
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&len) {
        return Err(invalid("message length out of range"));
    }
    let mut message = vec![0u8; len];
    message[..4].copy_from_slice(&(len as i32).to_le_bytes());
    stream.read_exact(&mut message[4..]).await?;
    Ok(message)
}

/// An OP_MSG: its body (section kind 0) parsed, its document sequences kept as bytes.
struct OpMsg {
    flags: u32,
    body: Document,
    sequences: Vec<u8>,
}

impl OpMsg {
    fn parse(bytes: &[u8]) -> io::Result<OpMsg> {
        if bytes.len() < 5 {
            return Err(invalid("short OP_MSG"));
        }
        let flags = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let end = if flags & CHECKSUM_PRESENT != 0 {
            bytes.len().saturating_sub(4)
        } else {
            bytes.len()
        };
        let mut at = 4;
        let mut body = None;
        let mut sequences = Vec::new();
        while at < end {
            let kind = bytes[at];
            let size = i32_at(bytes, at + 1) as usize;
            match kind {
                0 => {
                    let doc = bytes
                        .get(at + 1..at + 1 + size)
                        .ok_or_else(|| invalid("truncated OP_MSG body"))?;
                    body = Some(Document::from_reader(doc).map_err(|_| invalid("bad body"))?);
                    at += 1 + size;
                }
                1 => {
                    let section = bytes
                        .get(at..at + 1 + size)
                        .ok_or_else(|| invalid("truncated document sequence"))?;
                    sequences.extend_from_slice(section);
                    at += 1 + size;
                }
                _ => return Err(invalid("unknown OP_MSG section kind")),
            }
        }
        Ok(OpMsg {
            flags: flags & !CHECKSUM_PRESENT,
            body: body.ok_or_else(|| invalid("OP_MSG without a body"))?,
            sequences,
        })
    }

    fn more_to_come(&self) -> bool {
        self.flags & MORE_TO_COME != 0
    }

    /// The message to forward: same request id, body stripped, no checksum.
    fn encode(&self, header: &Header) -> io::Result<Vec<u8>> {
        let body = strip_session_fields(self.body.clone());
        let mut payload = self.flags.to_le_bytes().to_vec();
        payload.push(0);
        body.to_writer(&mut payload)
            .map_err(|_| invalid("body not encodable"))?;
        payload.extend_from_slice(&self.sequences);
        Ok(frame(header.request_id, 0, OP_MSG, &payload))
    }
}

fn frame(request_id: i32, response_to: i32, op_code: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&((HEADER_LEN + payload.len()) as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn op_msg_reply(shared: &Shared, to: &Header, answer: &Document) -> io::Result<Vec<u8>> {
    let mut payload = 0u32.to_le_bytes().to_vec();
    payload.push(0);
    answer
        .to_writer(&mut payload)
        .map_err(|_| invalid("reply not encodable"))?;
    Ok(frame(shared.request_id(), to.request_id, OP_MSG, &payload))
}

fn op_reply(shared: &Shared, to: &Header, answer: &Document) -> io::Result<Vec<u8>> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    payload.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    payload.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    payload.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    answer
        .to_writer(&mut payload)
        .map_err(|_| invalid("reply not encodable"))?;
    Ok(frame(
        shared.request_id(),
        to.request_id,
        OP_REPLY,
        &payload,
    ))
}

/// The command of an OP_QUERY on `*.$cmd` (unwrapping `$query`), or `None`.
fn op_query_command(bytes: &[u8]) -> Option<Document> {
    let name_end = bytes.get(4..)?.iter().position(|b| *b == 0)? + 4;
    let collection = std::str::from_utf8(&bytes[4..name_end]).ok()?;
    if !collection.ends_with(".$cmd") {
        return None;
    }
    let query = Document::from_reader(bytes.get(name_end + 1 + 8..)?).ok()?;
    match query.get_document("$query") {
        Ok(inner) => Some(inner.clone()),
        Err(_) => Some(query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that is never reached: hellos and refusals are answered by the member.
    fn nowhere() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    async fn send_op_msg(stream: &mut TcpStream, body: Document) -> Document {
        let mut payload = 0u32.to_le_bytes().to_vec();
        payload.push(0);
        body.to_writer(&mut payload).unwrap();
        stream
            .write_all(&frame(77, 0, OP_MSG, &payload))
            .await
            .unwrap();
        let reply = read_message(stream).await.unwrap();
        let header = Header::parse(&reply);
        assert_eq!(header.op_code, OP_MSG);
        assert_eq!(i32_at(&reply, 8), 77, "responseTo is the request id");
        OpMsg::parse(&reply[HEADER_LEN..]).unwrap().body
    }

    async fn send_op_query(stream: &mut TcpStream, query: Document) -> Document {
        let mut payload = 0i32.to_le_bytes().to_vec();
        payload.extend_from_slice(b"admin.$cmd\0");
        payload.extend_from_slice(&0i32.to_le_bytes());
        payload.extend_from_slice(&(-1i32).to_le_bytes());
        query.to_writer(&mut payload).unwrap();
        stream
            .write_all(&frame(5, 0, OP_QUERY, &payload))
            .await
            .unwrap();
        let reply = read_message(stream).await.unwrap();
        assert_eq!(Header::parse(&reply).op_code, OP_REPLY);
        assert_eq!(i32_at(&reply, 8), 5);
        assert_eq!(i32_at(&reply, HEADER_LEN + 16), 1, "one document");
        Document::from_reader(&reply[HEADER_LEN + 20..]).unwrap()
    }

    #[tokio::test]
    async fn every_member_names_the_set_and_its_primary() {
        let set = ReplicaSet::start(nowhere(), "rs0").await.unwrap();
        let hosts: Vec<Bson> = set.hosts().iter().cloned().map(Bson::String).collect();
        assert_eq!(hosts.len(), 3);
        assert_eq!(
            set.url(),
            format!(
                "mongodb://{},{},{}/?replicaSet=rs0",
                set.hosts()[0],
                set.hosts()[1],
                set.hosts()[2]
            )
        );
        for i in 0..MEMBERS {
            let hello = set.hello_reply(i, false);
            assert_eq!(hello.get_str("setName").unwrap(), "rs0");
            assert_eq!(hello.get_array("hosts").unwrap(), &hosts);
            assert_eq!(hello.get_str("me").unwrap(), set.hosts()[i]);
            assert_eq!(hello.get_str("primary").unwrap(), set.hosts()[0]);
            assert_eq!(hello.get_bool("isWritablePrimary").unwrap(), i == 0);
            assert_eq!(hello.get_bool("secondary").unwrap(), i != 0);
            assert_eq!(hello.contains_key("electionId"), i == 0);
            assert_eq!(hello.get_i32("logicalSessionTimeoutMinutes").unwrap(), 30);
            assert_eq!(hello.get_i32("maxWireVersion").unwrap(), MAX_WIRE_VERSION);
            assert!(!hello.contains_key("topologyVersion"), "no streaming");
        }
        let legacy = set.hello_reply(1, true);
        assert!(!legacy.get_bool("ismaster").unwrap());
        assert!(!legacy.contains_key("isWritablePrimary"));
    }

    #[tokio::test]
    async fn a_step_down_names_the_new_primary_with_a_greater_election_id() {
        let set = ReplicaSet::start(nowhere(), "rs0").await.unwrap();
        let before = set.hello_reply(0, false);
        set.step_down(Some(2));
        assert_eq!(set.primary(), Some(2));
        let old = set.hello_reply(0, false);
        assert!(!old.get_bool("isWritablePrimary").unwrap());
        assert!(old.get_bool("secondary").unwrap());
        assert_eq!(old.get_str("primary").unwrap(), set.hosts()[2]);
        let new = set.hello_reply(2, false);
        assert!(new.get_bool("isWritablePrimary").unwrap());
        assert!(
            new.get_object_id("electionId").unwrap() > before.get_object_id("electionId").unwrap()
        );
        assert!(new.get_i32("setVersion").unwrap() > before.get_i32("setVersion").unwrap());
        // An election under way: nobody is primary, nobody claims to be.
        set.step_down(None);
        for i in 0..MEMBERS {
            let hello = set.hello_reply(i, false);
            assert!(!hello.contains_key("primary"));
            assert!(!hello.get_bool("isWritablePrimary").unwrap());
        }
    }

    #[tokio::test]
    async fn hellos_are_answered_over_op_msg_and_the_legacy_op_query() {
        let set = ReplicaSet::start(nowhere(), "rs0").await.unwrap();
        let mut conn = TcpStream::connect(&set.hosts()[1]).await.unwrap();
        let legacy = send_op_query(&mut conn, doc! {"isMaster": 1, "helloOk": true}).await;
        assert!(!legacy.get_bool("ismaster").unwrap());
        assert!(legacy.get_bool("helloOk").unwrap());
        assert_eq!(legacy.get_str("me").unwrap(), set.hosts()[1]);
        let wrapped = send_op_query(
            &mut conn,
            doc! {"$query": {"ismaster": 1}, "$readPreference": {}},
        )
        .await;
        assert_eq!(wrapped.get_str("setName").unwrap(), "rs0");
        let hello = send_op_msg(&mut conn, doc! {"hello": 1, "$db": "admin"}).await;
        assert!(hello.get_bool("secondary").unwrap());
        assert_eq!(hello.get_str("primary").unwrap(), set.hosts()[0]);
    }

    #[tokio::test]
    async fn a_secondary_refuses_writes_and_primary_reads() {
        let set = ReplicaSet::start(nowhere(), "rs0").await.unwrap();
        let mut conn = TcpStream::connect(&set.hosts()[2]).await.unwrap();
        let write = send_op_msg(
            &mut conn,
            doc! {"insert": "c", "$db": "d", "txnNumber": 1i64, "documents": []},
        )
        .await;
        assert_eq!(write.get_i32("code").unwrap(), 10107);
        assert_eq!(
            write.get_array("errorLabels").unwrap(),
            &vec![Bson::String("RetryableWriteError".into())]
        );
        let read = send_op_msg(&mut conn, doc! {"find": "c", "$db": "d"}).await;
        assert_eq!(read.get_i32("code").unwrap(), 13435);
    }

    #[tokio::test]
    async fn a_member_down_refuses_connections_and_comes_back_on_the_same_port() {
        let set = ReplicaSet::start(nowhere(), "rs0").await.unwrap();
        let mut open = TcpStream::connect(&set.hosts()[1]).await.unwrap();
        set.member_down(1).await;
        assert!(TcpStream::connect(&set.hosts()[1]).await.is_err());
        // The connection it had is gone too.
        let mut buf = [0u8; 1];
        assert!(matches!(open.read(&mut buf).await, Ok(0) | Err(_)));
        // The others still answer.
        let mut other = TcpStream::connect(&set.hosts()[0]).await.unwrap();
        let hello = send_op_msg(&mut other, doc! {"hello": 1, "$db": "admin"}).await;
        assert!(hello.get_bool("isWritablePrimary").unwrap());
        set.member_up(1).unwrap();
        let mut back = TcpStream::connect(&set.hosts()[1]).await.unwrap();
        let hello = send_op_msg(&mut back, doc! {"hello": 1, "$db": "admin"}).await;
        assert_eq!(hello.get_str("me").unwrap(), set.hosts()[1]);
    }

    #[test]
    fn session_fields_are_stripped_and_the_command_kept() {
        let body = doc! {
            "insert": "persons", "ordered": true, "$db": "aila",
            "lsid": {"id": 1}, "txnNumber": 3i64, "$clusterTime": {},
            "$readPreference": {"mode": "primary"},
        };
        assert_eq!(
            strip_session_fields(body),
            doc! {"insert": "persons", "ordered": true, "$db": "aila"}
        );
    }

    #[test]
    fn document_sequences_survive_forwarding_untouched() {
        let mut payload = 0u32.to_le_bytes().to_vec();
        payload.push(0);
        doc! {"insert": "c", "$db": "d", "lsid": {"id": 1}}
            .to_writer(&mut payload)
            .unwrap();
        let mut docs = Vec::new();
        doc! {"_id": 1}.to_writer(&mut docs).unwrap();
        let mut section = vec![1u8];
        section.extend_from_slice(&((4 + 10 + docs.len()) as i32).to_le_bytes());
        section.extend_from_slice(b"documents\0");
        section.extend_from_slice(&docs);
        payload.extend_from_slice(&section);
        let msg = OpMsg::parse(&payload).unwrap();
        let out = msg
            .encode(&Header {
                request_id: 9,
                op_code: OP_MSG,
            })
            .unwrap();
        assert_eq!(i32_at(&out, 0) as usize, out.len());
        assert_eq!(i32_at(&out, 4), 9);
        let again = OpMsg::parse(&out[HEADER_LEN..]).unwrap();
        assert_eq!(again.body, doc! {"insert": "c", "$db": "d"});
        assert_eq!(again.sequences, section);
    }
}
