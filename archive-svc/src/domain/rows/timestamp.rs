//! RFC 3339 timestamps with microseconds, written without `chrono`'s general formatter
//! (the hot spot of encoding a million rows); read back by `chrono`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub fn format(at: &DateTime<Utc>, out: &mut [u8; 27]) {
    fn put(out: &mut [u8], mut value: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    *out = *b"0000-00-00T00:00:00.000000Z";
    put(&mut out[0..4], at.year().clamp(0, 9999) as u32);
    put(&mut out[5..7], at.month());
    put(&mut out[8..10], at.day());
    put(&mut out[11..13], at.hour());
    put(&mut out[14..16], at.minute());
    put(&mut out[17..19], at.second().min(59));
    put(&mut out[20..26], at.timestamp_subsec_micros().min(999_999));
}

fn text(at: &DateTime<Utc>) -> Option<[u8; 27]> {
    let mut out = [0u8; 27];
    // Leap seconds and years outside 0..=9999 take chrono's general path.
    if (0..=9999).contains(&at.year()) && at.timestamp_subsec_nanos() < 1_000_000_000 {
        format(at, &mut out);
        return Some(out);
    }
    None
}

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match text(at) {
        Some(out) => serializer.serialize_str(std::str::from_utf8(&out).unwrap_or_default()),
        None => serializer.collect_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(d)
}

pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}
