//! CPU-bound pieces of a request: serialising a 500-person tree the way the `/api/tree`
//! route does (serde straight to bytes, `JsonOut`) and the way it did before (poem-openapi's
//! `Json`: `ToJSON` into a `serde_json::Value`, then `serde_json::to_vec`), the route's whole
//! CPU for the load scenario's tree without I/O (decode the driver's raw documents, convert,
//! serialise), and verifying a JWT (every authenticated request does).

use std::hint::black_box;

use aila_api::auth::token::TokenCodec;
use aila_api::domain::enums::Gender;
use aila_api::http::api::links::LinkOut;
use aila_api::http::api::persons::PersonOut;
use aila_api::http::api::tree::TreeOut;
use aila_api::repo::links::LinkDoc;
use aila_api::repo::persons::PersonDoc;
use aila_api::repo::raw::FromRaw;
use bson::oid::ObjectId;
use bson::{RawDocument, doc};
use criterion::{Criterion, Throughput};
use poem_openapi::types::ToJSON;

fn hex_id(n: usize) -> String {
    format!("6574a5b2c3d4{n:012x}")
}

/// A tree at the API's caps: 500 persons with their usual fields, and 500 links.
pub fn tree(persons: usize, links: usize) -> TreeOut {
    let owner = hex_id(999_999);
    let genders = [Gender::Male, Gender::Female, Gender::Unknown];
    TreeOut {
        persons: (0..persons)
            .map(|i| PersonOut {
                id: hex_id(i),
                user_id: owner.clone(),
                first_name: format!("Prénom{i}"),
                last_name: "Benchmark".into(),
                gender: genders[i % 3],
                birth_date: Some(format!("{}-03-14", 1900 + i % 100)),
                birth_place: Some("Lyon".into()),
                death_date: (i % 4 == 0).then(|| format!("{}-11-02", 1960 + i % 60)),
                death_place: (i % 4 == 0).then(|| "Paris".into()),
                photo: None,
                notes: Some("Arrivé de Savoie en 1921, menuisier.".into()),
                geographic_branch: Some("Rhône".into()),
                created_at: Some("2026-11-28T23:31:56.198817Z".into()),
                is_preview: false,
            })
            .collect(),
        links: (0..links)
            .map(|i| LinkOut {
                id: hex_id(100_000 + i),
                user_id: owner.clone(),
                person_id_1: hex_id(i % persons.max(1)),
                person_id_2: hex_id((i * 37 + 11) % persons.max(1)),
                link_type: ["parent", "child", "spouse", "sibling"][i % 4].into(),
                created_at: Some("2026-11-28T23:31:56.198817Z".into()),
            })
            .collect(),
    }
}

/// The documents of a tree as the driver hands them over (raw BSON bytes), so the route's
/// own CPU can be measured without I/O: decode, convert, serialise.
fn raw_tree(persons: usize, links: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let owner = hex_id(999_999);
    let ids: Vec<ObjectId> = (0..persons).map(|_| ObjectId::new()).collect();
    let now = bson::DateTime::now();
    let person_docs = (0..persons)
        .map(|i| {
            let (id, gender) = (ids[i], ["male", "female", "unknown"][i % 3]);
            let d = doc! {
                "_id": id, "user_id": &owner, "first_name": format!("Prénom{i}"),
                "last_name": "Benchmark", "gender": gender,
                "birth_date": format!("{}-03-14", 1900 + i % 100), "birth_place": "Lyon",
                "death_date": null, "death_place": null, "photo": null,
                "notes": "Arrivé de Savoie en 1921, menuisier.", "geographic_branch": "Rhône",
                "created_at": now, "is_preview": false,
            };
            bson::to_vec(&d).expect("BSON")
        })
        .collect();
    let link_docs = (0..links)
        .map(|i| {
            let (p1, p2) = (
                ids[i % persons].to_hex(),
                ids[(i * 37 + 11) % persons].to_hex(),
            );
            let link_type = ["parent", "child", "spouse", "sibling"][i % 4];
            let d = doc! {
                "_id": ObjectId::new(), "user_id": &owner, "person_id_1": p1, "person_id_2": p2,
                "link_type": link_type, "created_at": now,
            };
            bson::to_vec(&d).expect("BSON")
        })
        .collect();
    (person_docs, link_docs)
}

/// Reads one stored document in place, as the repository's lists do.
fn in_place<T: FromRaw>(bytes: &[u8]) -> T {
    T::from_raw(RawDocument::from_bytes(bytes).expect("BSON")).expect("a document")
}

/// What the route does with the driver's documents: read in place, then converted.
fn decode_tree(raw: &(Vec<Vec<u8>>, Vec<Vec<u8>>)) -> TreeOut {
    let persons: Vec<PersonDoc> = raw.0.iter().map(|b| in_place(b.as_slice())).collect();
    let links: Vec<LinkDoc> = raw.1.iter().map(|b| in_place(b.as_slice())).collect();
    TreeOut {
        persons: persons.into_iter().map(PersonOut::from).collect(),
        links: links.into_iter().map(LinkOut::from).collect(),
    }
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("payloads");
    let t = tree(500, 500);
    let bytes = serde_json::to_vec(&t.to_json()).expect("JSON").len();
    eprintln!(
        "payloads/tree: 500 persons + 500 links = {:.1} KiB of JSON",
        bytes as f64 / 1024.0
    );
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("tree 500 persons + 500 links: ToJSON + to_vec", |b| {
        b.iter(|| black_box(serde_json::to_vec(&black_box(&t).to_json()).expect("JSON")))
    });
    g.bench_function("tree 500 persons + 500 links: ToJSON only", |b| {
        b.iter(|| black_box(black_box(&t).to_json()))
    });
    // The same bytes both ways (the route's unit tests check it too).
    assert_eq!(
        serde_json::to_vec(&t.to_json()).expect("JSON"),
        serde_json::to_vec(&t).expect("JSON"),
        "serde writes the tree as ToJSON does"
    );
    g.bench_function(
        "tree 500 persons + 500 links: serde straight to bytes (JsonOut, the route)",
        |b| b.iter(|| black_box(serde_json::to_vec(black_box(&t)).expect("JSON"))),
    );

    // The /api/tree route's CPU for the issue's tree (100 persons, 150 links), I/O aside.
    let raw = raw_tree(100, 150);
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "tree 100 persons + 150 links: BSON decode + From + serde to bytes (route CPU, no I/O)",
        |b| {
            b.iter(|| {
                let t = decode_tree(black_box(&raw));
                black_box(serde_json::to_vec(&t).expect("JSON"))
            })
        },
    );
    g.bench_function(
        "tree 100 persons + 150 links: BSON decode + From + ToJSON + to_vec (before JsonOut)",
        |b| {
            b.iter(|| {
                let t = decode_tree(black_box(&raw));
                black_box(serde_json::to_vec(&t.to_json()).expect("JSON"))
            })
        },
    );
    g.bench_function(
        "tree 100 persons + 150 links: BSON decode + From only",
        |b| b.iter(|| black_box(decode_tree(black_box(&raw)))),
    );
    g.bench_function(
        "tree 100 persons: BSON decode in place, as the repository does (PersonDoc)",
        |b| {
            b.iter(|| {
                for d in &raw.0 {
                    black_box(in_place::<PersonDoc>(black_box(d)));
                }
            })
        },
    );
    g.bench_function(
        "tree 150 links: BSON decode in place, as the repository does (LinkDoc)",
        |b| {
            b.iter(|| {
                for d in &raw.1 {
                    black_box(in_place::<LinkDoc>(black_box(d)));
                }
            })
        },
    );
    g.bench_function("tree 100 persons: BSON decode by serde (before)", |b| {
        b.iter(|| {
            for d in &raw.0 {
                black_box(bson::from_slice::<PersonDoc>(black_box(d)).expect("a person"));
            }
        })
    });
    g.bench_function("tree 150 links: BSON decode by serde (before)", |b| {
        b.iter(|| {
            for d in &raw.1 {
                black_box(bson::from_slice::<LinkDoc>(black_box(d)).expect("a link"));
            }
        })
    });

    let codec = TokenCodec::new(b"a-benchmark-secret-of-realistic-length-0123456789");
    let token = codec.issue("6574a5b2c3d4e5f60718293a");
    g.throughput(Throughput::Elements(1));
    g.bench_function("JWT verify (HS256)", |b| {
        b.iter(|| black_box(codec.verify(black_box(&token)).expect("valid")))
    });
    g.finish();
}
