//! The last stage of a restore: the parser's batches inserted with binary COPY, one table
//! at a time, every row digested on its way in.

use tokio::sync::mpsc;

use super::{Phase, Progress};
use crate::{
    db::rows::CopyIn,
    domain::{
        payload::reader::Batch,
        rows::{Canonical, FileRecord, Row, RowsDigest, ScanItem},
    },
    error::Result,
};

/// Inserts the parser's batches as they come; returns the counts and the rows digest.
pub(super) async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    // Owned here, so a failed insert drops it and unblocks the parser.
    mut rows_rx: mpsc::Receiver<Batch>,
    progress: &mpsc::Sender<Progress>,
    state: &mut Progress,
) -> Result<(i64, i64, RowsDigest)> {
    state.phase = Phase::Inserting;
    let _ = progress.send(state.clone()).await;
    let mut digest = RowsDigest::default();
    let mut scratch = Canonical::default();
    let mut items: Option<CopyIn<ScanItem>> = None;
    let mut records: Option<CopyIn<FileRecord>> = None;
    let (mut item_count, mut record_count) = (0i64, 0i64);
    while let Some(batch) = rows_rx.recv().await {
        let mut sink = Sink {
            tx,
            digest: &mut digest,
            scratch: &mut scratch,
        };
        match batch {
            Batch::Items(rows) => {
                item_count += sink.insert(&mut items, &mut records, &rows).await?
            }
            Batch::Records(rows) => {
                record_count += sink.insert(&mut records, &mut items, &rows).await?;
            }
        }
        state.rows_done = (item_count + record_count) as u64;
        let _ = progress.try_send(state.clone());
    }
    if let Some(copy) = items.take() {
        copy.finish().await?;
    }
    if let Some(copy) = records.take() {
        copy.finish().await?;
    }
    Ok((item_count, record_count, digest))
}

/// Where restored rows go: one COPY per table, one table at a time, every row digested.
struct Sink<'a, 't> {
    tx: &'a deadpool_postgres::Transaction<'t>,
    digest: &'a mut RowsDigest,
    scratch: &'a mut Canonical,
}

impl Sink<'_, '_> {
    /// Inserts `rows` through `mine` (opened on first use) after ending `other`'s COPY.
    async fn insert<R: Row, O: Row>(
        &mut self,
        mine: &mut Option<CopyIn<R>>,
        other: &mut Option<CopyIn<O>>,
        rows: &[R],
    ) -> Result<i64> {
        if let Some(copy) = other.take() {
            copy.finish().await?;
        }
        let copy = match mine {
            Some(copy) => copy,
            None => mine.insert(CopyIn::open(self.tx).await?),
        };
        for row in rows {
            self.digest.add(row, self.scratch);
            copy.write(row).await?;
        }
        Ok(rows.len() as i64)
    }
}
