//! `floe-bench --schemas`: the cost of typed columns, validation and
//! redaction, and the bytes typed columns take on disk.
//!
//! A realistic 20-field order (nested address, repeated lines, a map, an
//! enum, a few protovalidate rules, field policies) is produced (acks=all,
//! max rate) to three topics:
//! - `orders-raw`: no schema subject, values stored as bytes;
//! - `orders-typed`: the order without policies registered, `off` mode:
//!   values stored as typed columns, not validated;
//! - `orders-checked`: the order with policies, `reject` mode: typed and
//!   validated.
//!
//! Each is then read back from offset 0 (`orders-checked` with no purpose
//! stated, so every restricted field is cut out of every value). The bytes
//! each topic takes in Parquet are compared as flushed and after
//! compaction: typed columns against the same values as zstd bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use floe_schema::prost_reflect::{DynamicMessage, MapKey, Value};
use floe_tests::Floe;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::Message;

use crate::{assigned_reader, create_topics, produce, producer, Acks, Args};

const ORDER: &str = r#"syntax = "proto3";
package bench;
import "buf/validate/validate.proto";
import "floe/policy/v1/policy.proto";
enum Status { STATUS_UNSPECIFIED = 0; PLACED = 1; PAID = 2; SHIPPED = 3; }
message Address {
  string street = 1 [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
  string city = 2;
  string postcode = 3;
  string country = 4 [(buf.validate.field).string.len = 2];
}
message Line { string sku = 1; int32 quantity = 2 [(buf.validate.field).int32.gt = 0]; int64 price_cents = 3; }
message Order {
  string id = 1 [(buf.validate.field).string.uuid = true];
  string customer_id = 2;
  string email = 3 [(buf.validate.field).string.email = true,
                    (floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
  Status status = 4 [(buf.validate.field).enum.defined_only = true];
  int64 created_ms = 5;
  int64 updated_ms = 6;
  Address billing = 7;
  Address shipping = 8;
  repeated Line lines = 9 [(buf.validate.field).repeated.max_items = 50];
  int64 total_cents = 10 [(floe.policy.v1.field) = {classification: "FINANCIAL", purposes: ["billing"]}];
  string currency = 11 [(buf.validate.field).string.len = 3];
  string channel = 12;
  bool gift = 13;
  string coupon = 14;
  double discount = 15;
  map<string, string> attributes = 16;
  repeated string tags = 17;
  string warehouse = 18;
  int32 priority = 19 [(buf.validate.field).int32 = {gte: 0, lte: 9}];
  string note = 20 [debug_redact = true];
}
"#;

/// A minimal HTTP POST: the registry needs three calls, not a client crate.
fn post(addr: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("POST {path}: {head} {rest}");
    }
    Ok(rest.to_string())
}

fn register(http: &str, subject: &str, schema: &str) -> anyhow::Result<i32> {
    let body = serde_json::json!({
        "schema": schema,
        "schemaType": "PROTOBUF",
        "references": [
            {"name": "buf/validate/validate.proto", "subject": "buf/validate/validate.proto", "version": 1},
            {"name": "floe/policy/v1/policy.proto", "subject": "floe/policy/v1/policy.proto", "version": 1},
        ],
    });
    let r: serde_json::Value = serde_json::from_str(&post(
        http,
        &format!("/subjects/{subject}/versions"),
        &body.to_string(),
    )?)?;
    r["id"]
        .as_i64()
        .map(|i| i as i32)
        .context("registry answered without an id")
}

/// The order without field policies or `debug_redact`: nothing to redact.
fn plain_order() -> String {
    ORDER
        .replace(
            r#" [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}]"#,
            "",
        )
        .replace(
            r#",
                    (floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}]"#,
            "]",
        )
        .replace(
            r#" [(floe.policy.v1.field) = {classification: "FINANCIAL", purposes: ["billing"]}]"#,
            "",
        )
        .replace(" [debug_redact = true]", "")
}

/// Distinct, valid orders, each with its wire prefix.
fn orders(n: u64, schema_id: i32) -> anyhow::Result<Vec<Vec<u8>>> {
    let compiled = floe_schema::compile(ORDER, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let order = compiled
        .file
        .messages()
        .find(|m| m.name() == "Order")
        .context("no Order")?;
    let indexes = compiled.indexes_of(&order).context("indexes")?;
    let address = compiled
        .pool
        .get_message_by_name("bench.Address")
        .context("Address")?;
    let line = compiled
        .pool
        .get_message_by_name("bench.Line")
        .context("Line")?;
    let s = |v: String| Value::String(v);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut m = DynamicMessage::new(order.clone());
        let addr = |kind: &str| {
            let mut a = DynamicMessage::new(address.clone());
            a.set_field_by_name("street", s(format!("{i} {kind} Street")));
            a.set_field_by_name("city", s(format!("City {}", i % 1000)));
            a.set_field_by_name("postcode", s(format!("{:05}", i % 100_000)));
            a.set_field_by_name("country", s("NO".into()));
            Value::Message(a)
        };
        m.set_field_by_name(
            "id",
            s(format!("{:08x}-2b7d-4c1e-9a34-{:012x}", i as u32, i)),
        );
        m.set_field_by_name("customer_id", s(format!("cust-{}", i % 50_000)));
        m.set_field_by_name("email", s(format!("user{i}@example.com")));
        m.set_field_by_name("status", Value::EnumNumber(1 + (i % 3) as i32));
        m.set_field_by_name("created_ms", Value::I64(1_700_000_000_000 + i as i64));
        m.set_field_by_name("updated_ms", Value::I64(1_700_000_100_000 + i as i64));
        m.set_field_by_name("billing", addr("Billing"));
        m.set_field_by_name("shipping", addr("Shipping"));
        let lines = (0..1 + i % 4)
            .map(|j| {
                let mut l = DynamicMessage::new(line.clone());
                l.set_field_by_name("sku", s(format!("SKU-{}", (i + j) % 10_000)));
                l.set_field_by_name("quantity", Value::I32(1 + (j as i32)));
                l.set_field_by_name("price_cents", Value::I64(999 + j as i64));
                Value::Message(l)
            })
            .collect();
        m.set_field_by_name("lines", Value::List(lines));
        m.set_field_by_name("total_cents", Value::I64(4_000 + (i % 9_000) as i64));
        m.set_field_by_name("currency", s("EUR".into()));
        m.set_field_by_name(
            "channel",
            s(["web", "app", "store"][(i % 3) as usize].into()),
        );
        m.set_field_by_name("gift", Value::Bool(i % 7 == 0));
        m.set_field_by_name("coupon", s(format!("C{}", i % 97)));
        m.set_field_by_name("discount", Value::F64((i % 20) as f64 / 100.0));
        m.set_field_by_name(
            "attributes",
            Value::Map(
                [
                    (
                        MapKey::String("source".into()),
                        s(format!("campaign-{}", i % 13)),
                    ),
                    (MapKey::String("locale".into()), s("nb-NO".into())),
                ]
                .into(),
            ),
        );
        m.set_field_by_name(
            "tags",
            Value::List(vec![s("priority".into()), s(format!("t{}", i % 5))]),
        );
        m.set_field_by_name("warehouse", s(format!("WH-{}", i % 8)));
        m.set_field_by_name("priority", Value::I32((i % 10) as i32));
        m.set_field_by_name("note", s(format!("leave at door {i}")));
        let mut v = floe_schema::wire::encode_prefix(schema_id, &indexes);
        prost::Message::encode(&m, &mut v)?;
        out.push(v);
    }
    Ok(out)
}

fn produce_all(
    floe: &Floe,
    topic: &str,
    values: &[Vec<u8>],
    partitions: i32,
) -> anyhow::Result<(f64, f64)> {
    let acks = Arc::new(Acks::default());
    let p = producer(&floe.bootstrap, acks.clone())?;
    let start = Instant::now();
    let mut bytes = 0u64;
    for (i, v) in values.iter().enumerate() {
        let key = (i as u64).to_be_bytes();
        bytes += (key.len() + v.len()) as u64;
        produce(&p, topic, i as i32 % partitions, &key, v);
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(300))?;
    let secs = start.elapsed().as_secs_f64();
    let errors = acks.errors.load(Ordering::Relaxed);
    if errors > 0 {
        bail!("{errors} produce errors on {topic}");
    }
    Ok((bytes as f64 / secs / 1e6, values.len() as f64 / secs))
}

fn fetch_all(floe: &Floe, topic: &str, n: usize, partitions: i32) -> anyhow::Result<(f64, f64)> {
    let c: BaseConsumer = assigned_reader(
        &floe.bootstrap,
        topic,
        partitions,
        &[("client.id", "bench-reader"), ("fetch.wait.max.ms", "50")],
    )?;
    let start = Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    while count < n {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("read {count} of {n} from {topic}");
        }
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m?;
            count += 1;
            bytes += m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes as f64 / secs / 1e6, count as f64 / secs))
}

/// Bytes of Parquet a topic's data files take in the data directory.
fn parquet_bytes(floe: &Floe, topic: &str) -> anyhow::Result<u64> {
    fn walk(dir: &std::path::Path, total: &mut u64) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                walk(&e.path(), total)?;
            } else if e.path().extension().is_some_and(|x| x == "parquet") {
                *total += e.metadata()?.len();
            }
        }
        Ok(())
    }
    let topics = floe.data_dir().join("objects").join("topics");
    let mut total = 0;
    for e in std::fs::read_dir(&topics)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        // `<topic>-<32 hex digits of its id>`.
        if name.len() == topic.len() + 33 && name.starts_with(&format!("{topic}-")) {
            walk(&e.path(), &mut total)?;
        }
    }
    Ok(total)
}

/// Compacts a topic until nothing is left to compact (files reach the
/// table, and so become candidates, within moments of their flush);
/// (files in, bytes in, bytes out) over all rounds.
fn compact(floe: &Floe, topic: &str) -> anyhow::Result<(u64, u64, u64)> {
    let mut total = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let r: serde_json::Value = serde_json::from_str(&post(
            &floe.http,
            &format!("/admin/topics/{topic}/compact"),
            "",
        )?)?;
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        if n("files_in") == 0 && total.0 > 0 {
            break;
        }
        total = (
            total.0 + n("files_in"),
            total.1 + n("bytes_in"),
            total.2 + n("bytes_out"),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(total)
}

/// Runs the schema benchmark.
pub fn run(args: &Args) -> anyhow::Result<()> {
    // Maintenance (retention, compaction) only at start: the bench
    // compacts when it means to measure it.
    let mut broker_args: Vec<&str> = args.broker_args.iter().map(String::as_str).collect();
    broker_args.extend(["--maintenance-interval-secs", "3600"]);
    let mut floe = Floe::start(&broker_args).context("starting floe")?;
    let partitions = args.partitions;
    // Files reach the table fast, so compaction (which takes only files
    // the table holds) can run right after the load.
    let topic = |name| {
        NewTopic::new(name, partitions, TopicReplication::Fixed(1))
            .set("floe.iceberg.commit.interval.ms", "100")
    };
    create_topics(
        &floe,
        &[
            topic("orders-raw"),
            topic("orders-typed"),
            topic("orders-checked").set("floe.validate.mode", "reject"),
        ],
    )?;
    let checked_id = register(&floe.http, "orders-checked-value", ORDER)?;
    let typed_id = register(&floe.http, "orders-typed-value", &plain_order())?;
    let n = args.records.min(500_000);
    let values = orders(n, checked_id)?;
    let typed_values = orders(n, typed_id)?;
    let avg = values.iter().map(Vec::len).sum::<usize>() / values.len().max(1);
    println!(
        "floe-bench --schemas: {} cores, {n} orders of 20 fields (avg {avg} B), {partitions} partitions, acks=all",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    let (raw_mb, raw_rps) = produce_all(&floe, "orders-raw", &values, partitions)?;
    let (typ_mb, typ_rps) = produce_all(&floe, "orders-typed", &typed_values, partitions)?;
    let (chk_mb, chk_rps) = produce_all(&floe, "orders-checked", &values, partitions)?;
    println!("produce, raw bytes:              {raw_mb:>7.1} MB/s {raw_rps:>9.0} records/s");
    println!(
        "produce, typed columns:          {typ_mb:>7.1} MB/s {typ_rps:>9.0} records/s  ({:.0} % of raw)",
        typ_rps / raw_rps * 100.0
    );
    println!(
        "produce, typed + validate reject: {chk_mb:>6.1} MB/s {chk_rps:>9.0} records/s  ({:.0} % of raw)",
        chk_rps / raw_rps * 100.0
    );
    let values_mb = values.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    let (raw_disk, typed_disk) = (
        parquet_bytes(&floe, "orders-raw")?,
        parquet_bytes(&floe, "orders-typed")?,
    );
    println!(
        "on disk as flushed: raw {:.1} MB, typed {:.1} MB ({:.2}x raw) for {values_mb:.1} MB of values",
        raw_disk as f64 / 1e6,
        typed_disk as f64 / 1e6,
        typed_disk as f64 / raw_disk.max(1) as f64
    );
    let (raw_files, raw_in, raw_out) = compact(&floe, "orders-raw")?;
    let (typed_files, typed_in, typed_out) = compact(&floe, "orders-typed")?;
    let after =
        |disk: u64, bytes_in: u64, bytes_out: u64| disk.saturating_sub(bytes_in) + bytes_out;
    let (raw_after, typed_after) = (
        after(raw_disk, raw_in, raw_out),
        after(typed_disk, typed_in, typed_out),
    );
    println!(
        "on disk after compaction ({raw_files} and {typed_files} files rewritten): raw {:.1} MB, typed {:.1} MB ({:.2}x raw)",
        raw_after as f64 / 1e6,
        typed_after as f64 / 1e6,
        typed_after as f64 / raw_after.max(1) as f64
    );
    // From Parquet only: a restart empties the tail cache.
    floe.restart(false)?;
    let (f_raw_mb, f_raw_rps) = fetch_all(&floe, "orders-raw", values.len(), partitions)?;
    let (f_typ_mb, f_typ_rps) = fetch_all(&floe, "orders-typed", values.len(), partitions)?;
    let (f_red_mb, f_red_rps) = fetch_all(&floe, "orders-checked", values.len(), partitions)?;
    println!("fetch, raw bytes:                {f_raw_mb:>7.1} MB/s {f_raw_rps:>9.0} records/s");
    println!(
        "fetch, typed (re-encoded):       {f_typ_mb:>7.1} MB/s {f_typ_rps:>9.0} records/s  ({:.0} % of raw)",
        f_typ_rps / f_raw_rps * 100.0
    );
    println!(
        "fetch, typed + redacted (no purpose, 5 restricted fields cut): {f_red_mb:>7.1} MB/s {f_red_rps:>9.0} records/s  ({:.0} % of raw)",
        f_red_rps / f_raw_rps * 100.0
    );
    Ok(())
}
