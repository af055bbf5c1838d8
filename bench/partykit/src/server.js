// The PartyKit baseline: a room that only broadcasts. Same frames as the bare
// baseline (crates/bench/src/bin/bare-broadcast.rs): for each command it takes the
// room's next seq, broadcasts {"event":{"seq","metadata":{"commandId"},"payload"}} to
// every connection (the sender too) and acks the sender. No persistence.
export default class Broadcast {
  constructor(room) {
    this.room = room;
    this.seq = 0;
  }

  onMessage(message, sender) {
    let id;
    try {
      id = JSON.parse(message).command.id;
    } catch {
      return;
    }
    this.seq += 1;
    const seq = this.seq;
    this.room.broadcast(
      `{"event":{"seq":${seq},"metadata":{"commandId":"${id}"},"payload":${message}}}`,
    );
    sender.send(`{"ack":{"id":"${id}","status":"accepted","seq":${seq}}}`);
  }
}
