//! The per-file tables in bulk: a job's rows taken out with binary
//! `COPY (DELETE … RETURNING …) TO STDOUT`, and rows put in with binary `COPY … FROM STDIN`.
//! Archive, restore and seed all go through here.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use uuid::Uuid;

use crate::{domain::rows::Row, error::Result};

/// Deletes every row of `R` of the job and streams them as they go; the deletes take
/// effect only if the transaction commits.
pub async fn take<R: Row>(
    tx: &deadpool_postgres::Transaction<'_>,
    job_id: Uuid,
) -> Result<impl Stream<Item = Result<R>> + use<R>> {
    let copy = format!(
        "copy (delete from {} where job_id = '{job_id}' returning {}) to stdout (format binary)",
        R::TABLE,
        R::COLUMNS.join(", ")
    );
    let stream = tx.copy_out(&copy).await?;
    Ok(BinaryCopyOutStream::new(stream, R::TYPES).map(|row| Ok(R::from_copy(&row?)?)))
}

/// Rows of one table going in with binary COPY.
pub struct CopyIn<R> {
    writer: Pin<Box<BinaryCopyInWriter>>,
    written: u64,
    _rows: std::marker::PhantomData<R>,
}

impl<R: Row> CopyIn<R> {
    pub async fn open(tx: &deadpool_postgres::Transaction<'_>) -> Result<Self> {
        let sink = tx
            .copy_in(&format!(
                "copy {} ({}) from stdin (format binary)",
                R::TABLE,
                R::COLUMNS.join(", ")
            ))
            .await?;
        Ok(Self {
            writer: Box::pin(BinaryCopyInWriter::new(sink, R::TYPES)),
            written: 0,
            _rows: std::marker::PhantomData,
        })
    }

    pub async fn write(&mut self, row: &R) -> Result<()> {
        self.writer.as_mut().write(&row.params()).await?;
        self.written += 1;
        Ok(())
    }

    /// Ends the COPY; returns the rows written.
    pub async fn finish(mut self) -> Result<u64> {
        let copied = self.writer.as_mut().finish().await?;
        debug_assert_eq!(copied, self.written);
        Ok(copied)
    }
}
