//! Outbound Raft RPCs: openraft's `RaftNetworkV2` over HTTP (one held connection per peer, see
//! [`crate::conn`]).

use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::RaftTypeConfig;
use openraft::errors::Fatal;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::RaftError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::Member;
use crate::Result;
use crate::conn::Dialer;
use crate::conn::Failure;
use crate::conn::PeerConn;
use crate::wire;

/// How long a TCP connect to a peer may take before the peer counts as unreachable. Short,
/// because on a LAN a live peer answers a SYN in well under a millisecond and openraft
/// retries on its own schedule.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Default of [`NetworkOptions::pool_idle_timeout`].
pub const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(30);

/// Settings of the outbound Raft client.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// Shared secret sent with every RPC; peers refuse RPCs without it.
    pub secret: String,
    /// Source IP of outgoing connections (the node's own address). `None` lets the kernel pick.
    pub local_ip: Option<IpAddr>,
    /// TCP connect timeout, see [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// How long an unused connection to a peer is kept; below the peers' idle timeout,
    /// so that this side lets go of a connection before the peer closes it.
    pub pool_idle_timeout: Duration,
    /// With TLS: the client side of mutual TLS (trusting the cluster CA, presenting this
    /// replica's certificate); peers are then called over `https`.
    pub tls: Option<rustls::ClientConfig>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            secret: String::new(),
            local_ip: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE,
            tls: None,
        }
    }
}

/// Creates one [`HttpNetwork`] per peer; all of them dial with the same settings.
pub struct HttpNetworkFactory<C> {
    dialer: Arc<Dialer>,
    secret: Arc<str>,
    _c: PhantomData<C>,
}

impl<C> HttpNetworkFactory<C> {
    /// Checks the options; connections are dialled (from `options.local_ip`) on first use.
    pub fn new(options: NetworkOptions) -> Result<Self> {
        // The secret is written into the request head as it is: it must be a valid header value.
        if axum::http::HeaderValue::from_str(&options.secret).is_err() {
            return Err(Error::Config("the cluster secret is not a valid HTTP header value".into()));
        }
        let dialer = Dialer {
            local_ip: options.local_ip,
            connect_timeout: options.connect_timeout,
            idle: options.pool_idle_timeout,
            tls: options.tls.map(|tls| tokio_rustls::TlsConnector::from(Arc::new(tls))),
        };
        Ok(Self { dialer: Arc::new(dialer), secret: options.secret.into(), _c: PhantomData })
    }
}

impl<C> RaftNetworkFactory<C> for HttpNetworkFactory<C>
where
    C: RaftTypeConfig<Node = Member>,
{
    type Network = HttpNetwork<C>;

    async fn new_client(&mut self, target: C::NodeId, node: &Member) -> Self::Network {
        HttpNetwork {
            conn: PeerConn::new(self.dialer.clone(), node.raft_addr.clone()),
            secret: self.secret.clone(),
            target,
            _c: PhantomData,
        }
    }
}

/// The connection to one peer.
pub struct HttpNetwork<C: RaftTypeConfig> {
    conn: PeerConn,
    secret: Arc<str>,
    target: C::NodeId,
    _c: PhantomData<C>,
}

impl Failure {
    fn into_rpc<C: RaftTypeConfig>(self) -> RPCError<C> {
        match self {
            Failure::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }

    fn into_streaming<C: RaftTypeConfig>(self) -> StreamingError<C> {
        match self {
            Failure::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}

impl<C: RaftTypeConfig> HttpNetwork<C> {
    /// One POST with a postcard body; decodes a postcard `Result<Resp, Err>` answer.
    async fn call<Req, Resp, Err>(&mut self, rpc: &str, req: &Req, timeout: Duration) -> Result<Resp, Failure>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: DeserializeOwned + std::fmt::Display,
    {
        let path = format!("/raft/{rpc}");
        let body = wire::encode(req).map_err(|e| Failure::Network(e.to_string()))?;
        let answer = self.conn.post(&path, &self.secret, &body, timeout).await?;
        if !(200..300).contains(&answer.status) {
            let text = String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]).into_owned();
            return Err(Failure::Network(format!("{}: HTTP {}: {text}", self.conn.target(&path), answer.status)));
        }
        let result: std::result::Result<Resp, Err> =
            wire::decode(&answer.body).map_err(|e| Failure::Network(format!("{}: {e}", self.conn.target(&path))))?;
        result.map_err(|e| Failure::Network(format!("{}: remote error: {e}", self.conn.target(&path))))
    }
}

impl<C> RaftNetworkV2<C> for HttpNetwork<C>
where
    C: RaftTypeConfig<Node = Member>,
{
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.call::<_, _, RaftError<C>>("append", &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call::<_, _, RaftError<C>>("vote", &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call::<_, _, RaftError<C>>("pre-vote", &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let req = (vote, snapshot.meta, snapshot.snapshot);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call::<_, _, Fatal<C>>("snapshot", &req, option.hard_ttl()) => {
                res.map_err(Failure::into_streaming)
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.call::<_, _, Fatal<C>>("transfer-leader", &req, option.hard_ttl()).await.map_err(Failure::into_rpc)
    }
}

impl<C: RaftTypeConfig> std::fmt::Debug for HttpNetwork<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpNetwork(target={}, {})", self.target, self.conn.target("/raft"))
    }
}
