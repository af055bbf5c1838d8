//! The fan-out baseline: a bare tokio + tungstenite WebSocket broadcast server with no
//! persistence, no auth, no projection. Rooms by path. For each text frame
//! `{"command":{"id":ID,...}}` it takes the room's next seq, broadcasts
//! `{"event":{"seq":N,"metadata":{"commandId":ID},"payload":<the command>}}` to every
//! connection of the room (the sender too, as Hearth does) and answers the sender
//! `{"ack":{"id":ID,"status":"accepted","seq":N}}`. Each connection has a bounded
//! queue (256 frames, like Hearth's default); a full queue drops the connection, so a
//! consumer that stops reading cannot grow the server's memory.
//!
//!   bare-broadcast [--listen 127.0.0.1:0]   (prints `listening on http://ADDR`)

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const QUEUE: usize = 256;

type Frame = Arc<str>;

#[derive(Default)]
struct Room {
    seq: u64,
    conns: Vec<(u64, mpsc::Sender<Frame>)>,
}

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    command: CommandId<'a>,
}

#[derive(serde::Deserialize)]
struct CommandId<'a> {
    id: &'a str,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--listen" {
            listen = args.next().context("--listen needs an address")?;
        }
    }
    let listener = TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = connection(stream, rooms).await;
        });
    }
}

// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, rooms: Arc<Rooms>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    })
    .await?;
    let id = rooms
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE);
    lock(&rooms)
        .entry(path.clone())
        .or_default()
        .conns
        .push((id, tx));
    let (mut sink, mut stream) = ws.split();
    let result = async {
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(f) => sink.send(Message::text(f.to_string())).await?,
                    None => break, // kicked as a slow consumer
                },
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(env) = serde_json::from_str::<Envelope<'_>>(text.as_str()) else {
                            continue;
                        };
                        let mut all = lock(&rooms);
                        let Some(room) = all.get_mut(&path) else { break };
                        room.seq += 1;
                        let seq = room.seq;
                        let event: Frame = format!(
                            r#"{{"event":{{"seq":{seq},"metadata":{{"commandId":"{}"}},"payload":{}}}}}"#,
                            env.command.id,
                            text.as_str()
                        )
                        .into();
                        room.conns.retain(|(_, c)| c.try_send(event.clone()).is_ok());
                        let ack: Frame =
                            format!(r#"{{"ack":{{"id":"{}","status":"accepted","seq":{seq}}}}}"#, env.command.id).into();
                        // Our own queue lives in the room: gone means kicked.
                        match room.conns.iter().find(|(c, _)| *c == id) {
                            Some((_, own)) if own.try_send(ack).is_ok() => {}
                            Some(_) => room.conns.retain(|(c, _)| *c != id),
                            None => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        anyhow::Ok(())
    }
    .await;
    let mut all = lock(&rooms);
    if let Some(room) = all.get_mut(&path) {
        room.conns.retain(|(c, _)| *c != id);
        if room.conns.is_empty() {
            all.remove(&path);
        }
    }
    result
}

fn lock(rooms: &Rooms) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
    rooms.rooms.lock().unwrap_or_else(|e| e.into_inner())
}
