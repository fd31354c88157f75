//! Feeds arbitrary bytes to the archive payload reader as every blob format holds it
//! (zstd, gzip, the earlier system's gzip): a restore must get rows of the job and the
//! payload's digest, or `DATA_LOSS`, never a panic or a hang. The first byte picks the
//! format; 3 and 4 compress the rest first (zstd, gzip), so the JSON parser itself is
//! reached by what the fuzzer writes.

#![no_main]

use std::io::Write;

use archive_svc::{
    domain::payload::{
        BlobFormat,
        reader::{Batch, parse},
    },
    error::Error,
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use uuid::Uuid;

const JOB: Uuid = Uuid::from_u128(0x0193_f233_0000_7000_8000_0000_0000_0001);

fn blob(selector: u8, data: &[u8]) -> Option<(BlobFormat, Vec<u8>)> {
    Some(match selector {
        0 => (BlobFormat::JsonZstd, data.to_vec()),
        1 => (BlobFormat::JsonGzip, data.to_vec()),
        2 => (BlobFormat::LegacyJsonGzip, data.to_vec()),
        3 => (BlobFormat::JsonZstd, zstd::encode_all(data, 1).ok()?),
        4 => {
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzip.write_all(data).ok()?;
            (BlobFormat::JsonGzip, gzip.finish().ok()?)
        }
        _ => return None,
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let Some((format, blob)) = blob(selector, data) else {
        return;
    };
    let (plaintext, chunks) = mpsc::channel(4);
    let (rows, mut batches) = mpsc::channel(4);
    let reading = std::thread::spawn(move || {
        let mut count = 0usize;
        while let Some(batch) = batches.blocking_recv() {
            count += match batch {
                Batch::Items(items) => {
                    assert!(items.iter().all(|item| item.job_id == JOB));
                    items.len()
                }
                Batch::Records(records) => {
                    assert!(records.iter().all(|record| record.job_id == JOB));
                    records.len()
                }
            };
        }
        count
    });
    // Small chunks, as a store's stream delivers them.
    let feeding = std::thread::spawn(move || {
        for piece in blob.chunks(997) {
            if plaintext
                .blocking_send(Ok(Bytes::copy_from_slice(piece)))
                .is_err()
            {
                return;
            }
        }
    });
    match parse(chunks, format, JOB, rows) {
        Ok(_) | Err(Error::DataLoss(_)) => {}
        Err(other) => panic!("a malformed payload is DATA_LOSS, not {other:?}"),
    }
    feeding.join().expect("the feeder never panics");
    reading.join().expect("every row is of the job");
});
