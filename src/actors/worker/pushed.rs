//! Values a client pushed to this worker (its direct scatter,
//! `ToPeer::PutData` on the peer port or `ToPeer::ShmPutData` on the
//! shared-memory socket): kept exactly as a scheduler's `StoreData`, so the
//! worker confirms them with `AddKeys` and the scheduler decides whether
//! they stay.

use actix::Handler;

use super::WorkerActor;
use crate::actors::pushed::Pushed;
use crate::wire::messages::{Payload, ToWorker};

impl Handler<Pushed> for WorkerActor {
    type Result = ();
    fn handle(&mut self, msg: Pushed, ctx: &mut Self::Context) {
        let data = msg.0.into_iter().map(|(k, b)| (k, Payload(b))).collect();
        self.handle_batch(vec![ToWorker::StoreData { data }], ctx);
    }
}
